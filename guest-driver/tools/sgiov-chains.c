// SPDX-License-Identifier: MIT
/*
 * sgiov-chains: executor chains from the guest, one check per line:
 *   check name=NAME ok=0|1 got=V want=V
 * then "chains checks=N failed=N". Sets the device's AES key and VNI
 * (needs CAP_NET_ADMIN), then through loopback pipes (executor L) and
 * connected pairs (I): ENCRYPT (28 bytes more, not the plaintext, a fresh
 * IV each time), ENCRYPT+DECRYPT (the plaintext back, wrapping the rings),
 * DECRYPT of ciphertext the device made, and of garbage or a short message
 * (EBADMSG once, in its place; the next message arrives; also through the
 * mapped rings), ENCAP (the header) then DECAP (the payload; a message
 * without the header or with another VNI is EBADMSG), CRC32C (executor M:
 * data unchanged, the digests equal a CRC32C computed here, in order),
 * LOOKASIDE_CRC32C (executor A: nothing delivered, the digests return to
 * the sender), a four-stage chain between two sockets in both directions,
 * and chains the device refuses (EINVAL, after which the socket connects).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libsgiov.h"

#define TMO	  5000 /* ms */
#define PORT	  7401
#define VNI	  0x123456u
#define OTHER_VNI 0x654321u
#define GROW	  (SGIOV_CRYPTO_IV_LEN + SGIOV_CRYPTO_TAG_LEN)

#include "check.h"

/* CRC32C (Castagnoli, reflected polynomial 0x82f63b78), bit by bit. */
static uint32_t crc32c(const unsigned char *p, size_t n)
{
	uint32_t c = ~0u;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & -(c & 1));
	}
	return ~c;
}

/* A non-blocking socket connected to itself through chain; -1 when connect fails. */
static int loop_sock(uint32_t size, uint32_t chain, const char *name)
{
	int s = sgiov_socket(size, size), r;

	if (s < 0) {
		check(name, -errno, 0);
		return -1;
	}
	r = sgiov_connect_chain(s, SGIOV_PORT_LOOPBACK, chain);
	check(name, res(r), 0);
	if (r < 0) {
		sgiov_close(s);
		return -1;
	}
	sgiov_set_nonblock(s, 1);
	return s;
}

/* A connected pair through chain (client *c, accepted *a), both non-blocking. */
static int pair(int l, uint32_t chain, int *c, int *a, const char *name)
{
	*c = sgiov_socket(16384, 16384);
	sgiov_set_nonblock(*c, 1);
	check(name, res(sgiov_connect_chain(*c, PORT, chain)), -EINPROGRESS);
	*a = sgiov_accept(l, 16384, 16384, SGIOV_ACCEPT_NONBLOCK);
	if (*a < 0 || !(sgiov_wait(*c, POLLOUT, TMO) & POLLOUT) || sgiov_connect_result(*c) < 0) {
		check("pair_connected", 0, 1);
		return -1;
	}
	return 0;
}

/* Waits for the next entry (message or failed message), then reports its SERR. */
static long next_serr(int s)
{
	struct sgiov_info i;

	sgiov_wait(s, POLLIN, TMO);
	if (sgiov_info(s, &i) < 0)
		return -errno;
	return i.rx_msg_err;
}

/* A message of len bytes sent through s comes back equal to want (wlen bytes). */
static long roundtrip(int tx, int rx, const unsigned char *msg, size_t len,
		      const unsigned char *want, size_t wlen)
{
	static unsigned char in[65536];
	ssize_t n;

	if (sgiov_send_wait(tx, msg, len, TMO) != (ssize_t)len)
		return -errno;
	n = sgiov_recv_wait(rx, in, sizeof(in), TMO);
	if (n < 0)
		return -errno;
	return (size_t)n == wlen && !memcmp(in, want, wlen);
}

int main(void)
{
	static unsigned char out[16384], in[16384], ct[16384], ct2[16384], framed[256], junk[2048];
	const unsigned char digits[] = "123456789";
	uint8_t key[32];
	uint32_t crc, dir, n1, n2;
	const uint8_t *p1, *p2;
	struct sgiov_info info;
	struct sgiov_rings r;
	int s, l, c, a, ok;
	long n;

	check("crc32c_check_value", crc32c(digits, 9), 0xe3069283);

	/* The device-wide key and VNI. */
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(i * 7 + 1);
	check("keys_aes", res(sgiov_set_crypto_key(-1, key)), 0);
	check("keys_vni", res(sgiov_set_vni(-1, VNI)), 0);
	check("keys_vni_too_big", res(sgiov_set_vni(-1, 1u << 24)), -EINVAL);

	/* Chains the device cannot run: EINVAL; the socket then connects without one. */
	s = sgiov_socket(4096, 4096);
	check("chain_unknown_stage", res(sgiov_connect_chain(s, 0, SGIOV_CHAIN(0x7f, 0, 0, 0))),
	      -EINVAL);
	check("chain_gap",
	      res(sgiov_connect_chain(s, 0, SGIOV_CHAIN(0, SGIOV_STAGE_ENCRYPT, 0, 0))), -EINVAL);
	check("chain_lookaside_in_chain",
	      res(sgiov_connect_chain(
		      s, 0, SGIOV_CHAIN(SGIOV_STAGE_LOOKASIDE_CRC32C, SGIOV_STAGE_CRC32C, 0, 0))),
	      -EINVAL);
	check("chain_lookaside_peer",
	      res(sgiov_connect_chain(s, PORT, SGIOV_CHAIN(SGIOV_STAGE_LOOKASIDE_CRC32C, 0, 0, 0))),
	      -EINVAL);
	check("chain_after_einval", res(sgiov_connect_chain(s, 0, 0)), 0);
	sgiov_set_nonblock(s, 1);
	fill(out, 100, 9);
	check("chain_none_data", roundtrip(s, s, out, 100, out, 100), 1);
	sgiov_close(s);

	/* ENCRYPT: IV | ciphertext | tag, 28 bytes more, not the plaintext, a fresh IV each time. */
	s = loop_sock(16384, SGIOV_CHAIN(SGIOV_STAGE_ENCRYPT, 0, 0, 0), "enc_connect");
	fill(out, 1000, 1);
	check("enc_send", res(sgiov_send(s, out, 1000)), 1000);
	check("enc_len", res(sgiov_recv_wait(s, ct, sizeof(ct), TMO)), 1000 + GROW);
	check("enc_not_plaintext", memcmp(ct + SGIOV_CRYPTO_IV_LEN, out, 1000) != 0, 1);
	sgiov_send(s, out, 1000);
	check("enc_len_again", res(sgiov_recv_wait(s, ct2, sizeof(ct2), TMO)), 1000 + GROW);
	check("enc_fresh_iv", memcmp(ct, ct2, 1000 + GROW) != 0, 1);
	ok = 1;
	for (int i = 0; i < 6; i++) { /* 6 x 5028 bytes through 16 KiB rings: they wrap */
		fill(in, 5000, 10 + i);
		if (sgiov_send_wait(s, in, 5000, TMO) != 5000 ||
		    sgiov_recv_wait(s, ct2, sizeof(ct2), TMO) != 5000 + GROW)
			ok = 0;
	}
	check("enc_wrap", ok, 1);
	sgiov_close(s);

	/* ENCRYPT+DECRYPT: the plaintext back, wrapping both rings. */
	s = loop_sock(16384, SGIOV_CHAIN(SGIOV_STAGE_ENCRYPT, SGIOV_STAGE_DECRYPT, 0, 0),
		      "encdec_connect");
	ok = 1;
	for (int i = 0; i < 6; i++) {
		fill(out, 6000 + i, 20 + i);
		if (roundtrip(s, s, out, 6000 + i, out, 6000 + i) != 1)
			ok = 0;
	}
	check("encdec_plaintext", ok, 1);
	sgiov_close(s);

	/*
	 * DECRYPT of the device's own ciphertext (ct: 1000 bytes of fill(.., 1)),
	 * then garbage and a short message in between: each failed one is
	 * EBADMSG once, in its place, and the socket goes on.
	 */
	s = loop_sock(16384, SGIOV_CHAIN(SGIOV_STAGE_DECRYPT, 0, 0, 0), "dec_connect");
	fill(out, 1000, 1);
	fill(junk, 1000 + GROW, 77);
	sgiov_send(s, ct, 1000 + GROW);
	sgiov_send(s, junk, 1000 + GROW);
	sgiov_send(s, ct, 1000 + GROW);
	sgiov_send(s, junk, 10); /* shorter than IV and tag */
	sgiov_send(s, ct, 1000 + GROW);
	n = sgiov_recv_wait(s, in, sizeof(in), TMO);
	check("dec_plaintext", n == 1000 && !memcmp(in, out, 1000), 1);
	check("dec_failed_pollin", sgiov_wait(s, POLLIN, TMO) & POLLIN, POLLIN);
	check("dec_failed_serr", next_serr(s), SGIOV_SERR_AUTH_FAILED);
	check("dec_garbage_ebadmsg", res(sgiov_recv_wait(s, in, sizeof(in), TMO)), -EBADMSG);
	n = sgiov_recv_wait(s, in, sizeof(in), TMO);
	check("dec_plaintext_after", n == 1000 && !memcmp(in, out, 1000), 1);
	check("dec_short_ebadmsg", res(sgiov_recv_wait(s, in, sizeof(in), TMO)), -EBADMSG);
	n = sgiov_recv_wait(s, in, sizeof(in), TMO);
	check("dec_plaintext_last", n == 1000 && !memcmp(in, out, 1000), 1);
	check("dec_empty", res(sgiov_recv(s, in, sizeof(in))), -EAGAIN);
	sgiov_info(s, &info);
	check("dec_msgs_failed", info.msgs_failed, 2);
	check("dec_socket_ok", info.err, 0);
	/* The same through the mapped rings. */
	sgiov_send(s, junk, 1000 + GROW);
	sgiov_send(s, ct, 1000 + GROW);
	sgiov_wait(s, POLLIN, TMO);
	check("dec_map", res(sgiov_map(s, &r)), 0);
	check("dec_map_ebadmsg", res(sgiov_peek_mapped(s, &r, &p1, &n1, &p2, &n2)), -EBADMSG);
	n = -1;
	for (int i = 0; i < 100 && n < 0; i++) { /* the next one may still be on its way */
		n = res(sgiov_peek_mapped(s, &r, &p1, &n1, &p2, &n2));
		if (n == -EAGAIN)
			sgiov_wait(s, POLLIN, TMO);
		else
			break;
	}
	check("dec_map_peek", n, 0);
	if (!n) {
		memcpy(in, p1, n1);
		memcpy(in + n1, p2, n2);
		check("dec_map_plaintext", n1 + n2 == 1000 && !memcmp(in, out, 1000), 1);
		check("dec_map_consume", res(sgiov_consume_mapped(s, n1 + n2)), 0);
	}
	sgiov_unmap(&r);
	sgiov_close(s);

	/* ENCAP: an 8-byte header with flags 0x08 and the VNI. */
	s = loop_sock(4096, SGIOV_CHAIN(SGIOV_STAGE_ENCAP, 0, 0, 0), "encap_connect");
	fill(out, 100, 2); /* out[0] = 2: no header */
	sgiov_send(s, out, 100);
	check("encap_len", res(sgiov_recv_wait(s, framed, sizeof(framed), TMO)),
	      100 + SGIOV_ENCAP_HDR_LEN);
	check("encap_header",
	      framed[0] == 0x08 && framed[4] == (VNI >> 16 & 0xff) &&
		      framed[5] == (VNI >> 8 & 0xff) && framed[6] == (VNI & 0xff),
	      1);
	check("encap_payload", memcmp(framed + SGIOV_ENCAP_HDR_LEN, out, 100), 0);
	sgiov_close(s);

	/* DECAP: the payload back; no header, or another VNI: EBADMSG (BAD_ENCAP). */
	s = loop_sock(4096, SGIOV_CHAIN(SGIOV_STAGE_DECAP, 0, 0, 0), "decap_connect");
	check("decap_payload", roundtrip(s, s, framed, 100 + SGIOV_ENCAP_HDR_LEN, out, 100), 1);
	sgiov_send(s, out, 100);
	check("decap_noheader_serr", next_serr(s), SGIOV_SERR_BAD_ENCAP);
	check("decap_noheader_ebadmsg", res(sgiov_recv_wait(s, in, sizeof(in), TMO)), -EBADMSG);
	sgiov_set_vni(-1, OTHER_VNI);
	sgiov_send(s, framed, 100 + SGIOV_ENCAP_HDR_LEN);
	check("decap_other_vni_ebadmsg", res(sgiov_recv_wait(s, in, sizeof(in), TMO)), -EBADMSG);
	sgiov_set_vni(-1, VNI);
	check("decap_payload_again", roundtrip(s, s, framed, 100 + SGIOV_ENCAP_HDR_LEN, out, 100),
	      1);
	sgiov_close(s);

	/* CRC32C (executor M): data unchanged, its digest beside it, in order. */
	s = loop_sock(16384, SGIOV_CHAIN(SGIOV_STAGE_CRC32C, 0, 0, 0), "crc_connect");
	fill(out, 5000, 3);
	check("crc_data", roundtrip(s, s, out, 5000, out, 5000), 1);
	crc = dir = ~0u;
	check("crc_digest_pop", res(sgiov_digest_wait(s, &crc, &dir, TMO)), 0);
	check("crc_digest", crc, crc32c(out, 5000));
	check("crc_digest_dir", dir, SGIOV_DIGEST_RX);
	check("crc_digest_none", res(sgiov_digest(s, &crc, &dir)), -EAGAIN);
	ok = 1;
	for (int i = 0; i < 3; i++) { /* 3 x 7000 bytes: they wrap */
		fill(out, 7000, 30 + i);
		if (roundtrip(s, s, out, 7000, out, 7000) != 1)
			ok = 0;
	}
	check("crc_data_wrap", ok, 1);
	sgiov_info(s, &info);
	check("crc_digests_waiting", info.digests, 3);
	check("crc_pollpri", sgiov_wait(s, POLLPRI, 0) & POLLPRI, POLLPRI);
	ok = 1;
	for (int i = 0; i < 3; i++) {
		fill(out, 7000, 30 + i);
		if (sgiov_digest(s, &crc, &dir) < 0 || crc != crc32c(out, 7000))
			ok = 0;
	}
	check("crc_digests_in_order", ok, 1);
	check("crc_no_pollpri", sgiov_wait(s, POLLPRI, 0) & POLLPRI, 0);
	sgiov_close(s);

	/* LOOKASIDE_CRC32C (executor A): consumed; only the digest, to the sender. */
	s = loop_sock(4096, SGIOV_CHAIN(SGIOV_STAGE_LOOKASIDE_CRC32C, 0, 0, 0), "la_connect");
	ok = 1;
	for (int i = 0; i < 3; i++) { /* 3 x 4000 bytes through a 4 KiB ring: each one consumed */
		fill(out, 4000, 40 + i);
		if (sgiov_send_wait(s, out, 4000, TMO) != 4000)
			ok = 0;
	}
	check("la_send", ok, 1);
	ok = 1;
	for (int i = 0; i < 3; i++) {
		fill(out, 4000, 40 + i);
		if (sgiov_digest_wait(s, &crc, &dir, TMO) < 0 || crc != crc32c(out, 4000) ||
		    dir != SGIOV_DIGEST_TX)
			ok = 0;
	}
	check("la_digests", ok, 1);
	check("la_nothing_delivered", res(sgiov_recv(s, in, sizeof(in))), -EAGAIN);
	sgiov_info(s, &info);
	check("la_rx_empty", info.rx_tail, 0);
	sgiov_close(s);

	/* Between two sockets (executor I): four stages, both directions; then CRC32C on a pair. */
	l = sgiov_socket(4096, 4096);
	check("pair_listen", res(sgiov_listen(l, PORT)), 0);
	if (!pair(l,
		  SGIOV_CHAIN(SGIOV_STAGE_ENCRYPT, SGIOV_STAGE_ENCAP, SGIOV_STAGE_DECAP,
			      SGIOV_STAGE_DECRYPT),
		  &c, &a, "pair4_connect")) {
		ok = 1;
		for (int i = 0; i < 4; i++) {
			fill(out, 9000, 50 + i);
			if (roundtrip(c, a, out, 9000, out, 9000) != 1)
				ok = 0;
		}
		check("pair4_client_to_server", ok, 1);
		fill(out, 300, 60);
		check("pair4_server_to_client", roundtrip(a, c, out, 300, out, 300), 1);
		sgiov_close(c);
		sgiov_close(a);
	}
	if (!pair(l, SGIOV_CHAIN(SGIOV_STAGE_CRC32C, 0, 0, 0), &c, &a, "pair_crc_connect")) {
		fill(out, 3000, 70);
		check("pair_crc_data", roundtrip(c, a, out, 3000, out, 3000), 1);
		check("pair_crc_digest",
		      sgiov_digest_wait(a, &crc, &dir, TMO) == 0 && crc == crc32c(out, 3000) &&
			      dir == SGIOV_DIGEST_RX,
		      1);
		check("pair_crc_sender_none", res(sgiov_digest(c, &crc, &dir)), -EAGAIN);
		fill(out, 200, 71);
		check("pair_crc_back", roundtrip(a, c, out, 200, out, 200), 1);
		check("pair_crc_back_digest",
		      sgiov_digest_wait(c, &crc, &dir, TMO) == 0 && crc == crc32c(out, 200), 1);
		sgiov_close(c);
		sgiov_close(a);
	}
	sgiov_close(l);

	printf("chains checks=%d failed=%d\n", checks, failed);
	return failed ? 1 : 0;
}
