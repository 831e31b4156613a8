/* SPDX-License-Identifier: MIT */
/*
 * SG-IOV guest/device ABI. GENERATED from emulator/abi/abi.ts by
 * `npm run gen-header`; do not edit by hand (a test checks it is current).
 */
#ifndef SGIOV_ABI_H
#define SGIOV_ABI_H

#define SGIOV_ABI_MAJOR                      1
#define SGIOV_ABI_MINOR                      2

/* PCI identity (defaults) */
#define SGIOV_PCI_VENDOR_ID                  0x1234
#define SGIOV_PCI_DEVICE_ID                  0x5347
#define SGIOV_PCI_SUBSYS_VENDOR_ID           0x1234
#define SGIOV_PCI_SUBSYS_ID                  0x0001
#define SGIOV_PCI_CLASS_BASE                 0x0002
#define SGIOV_PCI_CLASS_SUB                  0x0080
#define SGIOV_PCI_CLASS_PROG_IF              0x0000
#define SGIOV_PCI_REVISION                   0x0001

/* BAR layout */
#define SGIOV_REGS_BAR                       0
#define SGIOV_REGS_BAR_SIZE                  0x10000
#define SGIOV_MSIX_BAR                       4
#define SGIOV_MSIX_BAR_SIZE                  0x1000
#define SGIOV_MSIX_TABLE_OFFSET              0x0
#define SGIOV_MSIX_PBA_OFFSET                0x800
#define SGIOV_MSIX_VECTORS                   16
#define SGIOV_SHM_BAR                        2
#define SGIOV_SHM_BAR_SIZE                   0x20000

/* Shared-memory BAR layout (byte offsets; H2D_SLOTS is a count) */
#define SGIOV_SHM_H2D_PROD                   0x000
#define SGIOV_SHM_H2D_CONS                   0x040
#define SGIOV_SHM_H2D_FLAGS                  0x080
#define SGIOV_SHM_D2H_CONS                   0x0c0
#define SGIOV_SHM_D2H_ARM                    0x100
#define SGIOV_SHM_H2D_RING                   0x1000
#define SGIOV_SHM_H2D_SLOTS                  8192

/* Constants */
#define SGIOV_ID_MAGIC                       0x53474956
#define SGIOV_DMA_MAX_LEN                    0x100000
#define SGIOV_MAX_SOCKETS_DEFAULT            0x20000
#define SGIOV_RING_MIN                       0x1000
#define SGIOV_RING_MAX                       0x10000000
#define SGIOV_RING_DEFAULT                   0x100000
#define SGIOV_CMD_SLOT_SIZE                  0x40
#define SGIOV_SIGNAL_SIZE                    0x8
#define SGIOV_SIG_TYPE_SHIFT                 0x38
#define SGIOV_SIG_ID_SHIFT                   0x20
#define SGIOV_SIG_ID_MASK                    0xffffff
#define SGIOV_PORT_LOOPBACK                  0x0
#define SGIOV_CRYPTO_IV_LEN                  0xc
#define SGIOV_CRYPTO_TAG_LEN                 0x10
#define SGIOV_ENCAP_HDR_LEN                  0x8
#define SGIOV_MAX_TENANTS_DEFAULT            0x100
#define SGIOV_TENANT_NAME_LEN                0x20

/* BAR0 registers: offset, width in bytes */
#define SGIOV_REG_ID                         0x000           /* ro, 32-bit: Magic SGIOV_ID_MAGIC */
#define SGIOV_REG_VERSION                    0x004           /* ro, 32-bit: ABI version: major << 16 | minor */
#define SGIOV_REG_CAPS                       0x008           /* ro, 32-bit: Capability bits SGIOV_CAP_* */
#define SGIOV_REG_STATUS                     0x00c           /* ro, 32-bit: Device status bits SGIOV_STATUS_* */
#define SGIOV_REG_CONTROL                    0x010           /* rw, 32-bit: SGIOV_CONTROL_ENABLE; writing SGIOV_CONTROL_RESET resets the device (self-clearing) */
#define SGIOV_REG_ERROR_CODE                 0x014           /* w1c, 32-bit: Latched first error SGIOV_ERR_*; any write clears it and STATUS.ERROR */
#define SGIOV_REG_ERROR_ADDR                 0x018           /* ro, 64-bit: Guest address (or register offset) the latched error concerns */
#define SGIOV_REG_IRQ_STATUS                 0x020           /* w1c, 32-bit: Pending interrupt causes SGIOV_IRQ_*; write 1 to clear */
#define SGIOV_REG_IRQ_MASK                   0x024           /* rw, 32-bit: Enabled interrupt causes SGIOV_IRQ_* */
#define SGIOV_REG_ERR_VECTOR                 0x028           /* rw, 32-bit: MSI-X vector raised for SGIOV_IRQ_ERROR */
#define SGIOV_REG_NUM_VECTORS                0x02c           /* ro, 32-bit: Number of MSI-X vectors */
#define SGIOV_REG_SCRATCH                    0x030           /* rw, 32-bit: Free for the driver: reads back what was written */
#define SGIOV_REG_IRQ_COUNT                  0x034           /* ro, 32-bit: MSI-X messages sent since reset */
#define SGIOV_REG_BAD_ACCESS_COUNT           0x038           /* ro, 32-bit: Accesses to undefined offsets or with unsupported sizes since reset */
#define SGIOV_REG_DMA_COMPLETED              0x03c           /* ro, 32-bit: DMA jobs completed since reset */
#define SGIOV_REG_DMA_SRC                    0x100           /* rw, 64-bit: DMA job: guest address to read */
#define SGIOV_REG_DMA_DST                    0x108           /* rw, 64-bit: DMA job: guest address to write */
#define SGIOV_REG_DMA_LEN                    0x110           /* rw, 32-bit: DMA job: length in bytes, 1..SGIOV_DMA_MAX_LEN */
#define SGIOV_REG_DMA_OP                     0x114           /* rw, 32-bit: DMA job: transformation SGIOV_DMA_OP_* */
#define SGIOV_REG_DMA_VECTOR                 0x118           /* rw, 32-bit: DMA job: MSI-X vector raised on completion */
#define SGIOV_REG_DMA_STATUS                 0x11c           /* ro, 32-bit: DMA engine state SGIOV_DMA_STATE_* of the last job */
#define SGIOV_REG_DMA_TAG                    0x120           /* ro, 32-bit: Tag written to the doorbell for the last finished job */
#define SGIOV_REG_MAX_SOCKETS                0x200           /* ro, 32-bit: Socket ids are 0..MAX_SOCKETS-1 */
#define SGIOV_REG_H2D_MODE                   0x204           /* rw, 32-bit: How the device learns of H2D signals: SGIOV_H2D_MODE_* */
#define SGIOV_REG_D2H_BASE                   0x208           /* rw, 64-bit: Guest address of the D2H signal FIFO (8-byte slots) */
#define SGIOV_REG_D2H_SLOTS                  0x210           /* rw, 32-bit: D2H FIFO slots: a power of two, 64..1048576 */
#define SGIOV_REG_D2H_VECTOR                 0x214           /* rw, 32-bit: MSI-X vector for D2H signals */
#define SGIOV_REG_D2H_PROD_ADDR              0x218           /* rw, 64-bit: Guest address of a u32 the device updates with the D2H producer index */
#define SGIOV_REG_CMD_BASE                   0x220           /* rw, 64-bit: Guest address of the command slots (struct sgiov_cmd, 64 bytes each) */
#define SGIOV_REG_CMD_SLOTS                  0x228           /* rw, 32-bit: Command slots: a power of two, 1..65536 */
#define SGIOV_REG_IRQ_MOD_COUNT              0x22c           /* rw, 32-bit: Interrupt moderation: raise once this many D2H signals are pending (0 or 1: at once) */
#define SGIOV_REG_IRQ_MOD_USECS              0x230           /* rw, 32-bit: Interrupt moderation: or once the oldest pending signal is this old */
#define SGIOV_REG_DP_CONTROL                 0x234           /* rw, 32-bit: SGIOV_DP_CONTROL_START starts the data plane (FIFOs configured); clearing it stops it */
#define SGIOV_REG_DP_STATUS                  0x238           /* ro, 32-bit: SGIOV_DP_STATUS_* bits */
#define SGIOV_REG_SOCKETS_OPEN               0x23c           /* ro, 32-bit: Sockets that exist now */
#define SGIOV_REG_H2D_SIGNALS                0x240           /* ro, 32-bit: H2D signals consumed since start (wraps) */
#define SGIOV_REG_D2H_SIGNALS                0x244           /* ro, 32-bit: D2H signals produced since start (wraps) */
#define SGIOV_REG_KICKS                      0x248           /* ro, 32-bit: KICK doorbells received */
#define SGIOV_REG_SIGNAL_ERRORS              0x24c           /* ro, 32-bit: H2D signals rejected (bad id, type or value) */
#define SGIOV_REG_MSGS_MOVED                 0x250           /* ro, 32-bit: Messages moved through warp pipes (wraps) */
#define SGIOV_REG_CRYPTO_KEY                 0x260           /* wo, 64-bit: AES-256-GCM key of the crypto engine, 4 x 64 bits at 0x260..0x27f (write-only; reads 0) */
#define SGIOV_REG_CRYPTO_KEY1                0x268           /* wo, 64-bit: key bits 64..127 */
#define SGIOV_REG_CRYPTO_KEY2                0x270           /* wo, 64-bit: key bits 128..191 */
#define SGIOV_REG_CRYPTO_KEY3                0x278           /* wo, 64-bit: key bits 192..255 */
#define SGIOV_REG_ENCAP_VNI                  0x280           /* rw, 32-bit: VxLAN network id the encapsulation engine writes and the decapsulation engine expects */
#define SGIOV_REG_BYTES_MOVED                0x288           /* ro, 64-bit: Bytes moved through warp pipes since start (ABI 1.2; what a guest test reads around a program) */

/* Doorbells (trapped), BAR0 */
#define SGIOV_DOORBELL_BASE                  0x1000
#define SGIOV_DOORBELL_SIZE                  0x1000
#define SGIOV_DOORBELL_DMA                   0x1000
#define SGIOV_DOORBELL_KICK                  0x1004

/* Bit fields */
#define SGIOV_CAP_DMA_ENGINE                 (1u << 0)
#define SGIOV_CAP_MSIX                       (1u << 1)
#define SGIOV_CAP_SOCKETS                    (1u << 2)
#define SGIOV_CAP_SHM_FIFO                   (1u << 3)
#define SGIOV_STATUS_READY                   (1u << 0)
#define SGIOV_STATUS_ENABLED                 (1u << 1)
#define SGIOV_STATUS_ERROR                   (1u << 2)
#define SGIOV_STATUS_BUS_MASTER              (1u << 3)
#define SGIOV_CONTROL_ENABLE                 (1u << 0)
#define SGIOV_CONTROL_RESET                  (1u << 31)
#define SGIOV_IRQ_DMA_DONE                   (1u << 0)
#define SGIOV_IRQ_ERROR                      (1u << 1)
#define SGIOV_DP_CONTROL_START               (1u << 0)
#define SGIOV_DP_STATUS_RUNNING              (1u << 0)
#define SGIOV_DP_STATUS_POLLING              (1u << 1)
#define SGIOV_SHM_FLAG_NEED_KICK             (1u << 0)
#define SGIOV_CMD_FLAG_ADDR                  (1u << 0)
#define SGIOV_CMD_FLAG_V6ONLY                (1u << 1)
#define SGIOV_CMD_FLAG_PEER                  (1u << 2)
#define SGIOV_TENANT_CFG_AES                 (1u << 0)
#define SGIOV_TENANT_CFG_VNI                 (1u << 1)

/* Enumerations */
#define SGIOV_DMA_OP_COPY                    0
#define SGIOV_DMA_OP_INVERT                  1
#define SGIOV_DMA_STATE_IDLE                 0
#define SGIOV_DMA_STATE_DONE                 1
#define SGIOV_DMA_STATE_ERROR                2
#define SGIOV_ERR_NONE                       0
#define SGIOV_ERR_DMA_UNMAPPED               1
#define SGIOV_ERR_DMA_BUS_MASTER_OFF         2
#define SGIOV_ERR_DMA_BAD_LENGTH             3
#define SGIOV_ERR_BAD_OPCODE                 4
#define SGIOV_ERR_BAD_VECTOR                 5
#define SGIOV_ERR_BAD_DOORBELL               6
#define SGIOV_ERR_NOT_ENABLED                7
#define SGIOV_ERR_DP_BAD_CONFIG              8
#define SGIOV_ERR_ACCESS_FAILED              9
#define SGIOV_ERR_POISONED                   10
#define SGIOV_ERR_DMA_CORRUPTED              11
#define SGIOV_ERR_DEVICE_RESET               12
#define SGIOV_H2D_MODE_HYBRID                0
#define SGIOV_H2D_MODE_POLL                  1
#define SGIOV_H2D_MODE_KICK                  2
#define SGIOV_SIG_H2D_TX_TAIL                1
#define SGIOV_SIG_H2D_RX_HEAD                2
#define SGIOV_SIG_H2D_CMD                    3
#define SGIOV_SIG_H2D_NOP                    4
#define SGIOV_SIG_H2D_RESYNC                 5
#define SGIOV_SIG_D2H_TX_HEAD                129
#define SGIOV_SIG_D2H_RX_TAIL                130
#define SGIOV_SIG_D2H_CMD_DONE               131
#define SGIOV_SIG_D2H_EVENT                  132
#define SGIOV_SIG_D2H_SOCK_ERROR             133
#define SGIOV_SIG_D2H_DEV_ERROR              134
#define SGIOV_SIG_D2H_MSG_ERROR              135
#define SGIOV_SIG_D2H_DIGEST                 136
#define SGIOV_RING_DIR_TX                    0
#define SGIOV_RING_DIR_RX                    1
#define SGIOV_STAGE_NONE                     0
#define SGIOV_STAGE_ENCRYPT                  1
#define SGIOV_STAGE_DECRYPT                  2
#define SGIOV_STAGE_ENCAP                    3
#define SGIOV_STAGE_DECAP                    4
#define SGIOV_STAGE_CRC32C                   5
#define SGIOV_STAGE_LOOKASIDE_CRC32C         6
#define SGIOV_STAGE_FULL_COPY                7
#define SGIOV_CMD_OP_CREATE                  1
#define SGIOV_CMD_OP_LISTEN                  2
#define SGIOV_CMD_OP_CONNECT                 3
#define SGIOV_CMD_OP_ACCEPT                  4
#define SGIOV_CMD_OP_CLOSE                   5
#define SGIOV_CMD_OP_TENANT                  6
#define SGIOV_CMD_OP_BIND                    16
#define SGIOV_CMD_OP_SHUTDOWN                17
#define SGIOV_CMD_OP_NAME                    18
#define SGIOV_CMD_OP_TENANT_CREATE           32
#define SGIOV_CMD_OP_TENANT_DELETE           33
#define SGIOV_CMD_OP_TENANT_KEYS             34
#define SGIOV_STATUS_OK                      0
#define SGIOV_STATUS_ENOENT                  2
#define SGIOV_STATUS_EAGAIN                  11
#define SGIOV_STATUS_ENOMEM                  12
#define SGIOV_STATUS_EFAULT                  14
#define SGIOV_STATUS_EBUSY                   16
#define SGIOV_STATUS_EEXIST                  17
#define SGIOV_STATUS_EINVAL                  22
#define SGIOV_STATUS_EPIPE                   32
#define SGIOV_STATUS_EMSGSIZE                90
#define SGIOV_STATUS_EADDRINUSE              98
#define SGIOV_STATUS_ENETUNREACH             101
#define SGIOV_STATUS_EISCONN                 106
#define SGIOV_STATUS_ENOTCONN                107
#define SGIOV_STATUS_ECONNREFUSED            111
#define SGIOV_STATUS_EADDRNOTAVAIL           99
#define SGIOV_STATUS_EAFNOSUPPORT            97
#define SGIOV_STATUS_EOPNOTSUPP              95
#define SGIOV_STATUS_ENOSPC                  28
#define SGIOV_EVENT_CONN_PENDING             1
#define SGIOV_EVENT_CONNECTED                2
#define SGIOV_EVENT_PEER_CLOSED              3
#define SGIOV_EVENT_PEER_SHUTDOWN            4
#define SGIOV_SERR_NO_SUCH_RING              1
#define SGIOV_SERR_SOCKET_CLOSED             2
#define SGIOV_SERR_BAD_TAIL                  3
#define SGIOV_SERR_BAD_HEAD                  4
#define SGIOV_SERR_MSG_TOO_LARGE             5
#define SGIOV_SERR_UNKNOWN_SIGNAL            6
#define SGIOV_SERR_RING_UNMAPPED             7
#define SGIOV_SERR_NOT_CONNECTED             8
#define SGIOV_SERR_AUTH_FAILED               9
#define SGIOV_SERR_BAD_ENCAP                 10
#define SGIOV_SERR_CORRUPTED                 11
#define SGIOV_SERR_POISONED                  12
#define SGIOV_SERR_DMA_ERROR                 13
#define SGIOV_SERR_DEVICE_RESET              14
#define SGIOV_SERR_DEVICE_FAULT              15
#define SGIOV_SERR_LINK_FAILED               20

/* A signal: type, id and value in one 64-bit word */
#define SGIOV_SIG(type, id, value)           ((((unsigned long long)(type)) << SGIOV_SIG_TYPE_SHIFT) | (((unsigned long long)((id) & SGIOV_SIG_ID_MASK)) << SGIOV_SIG_ID_SHIFT) | (unsigned int)(value))
#define SGIOV_SIG_TYPE(sig)                  ((unsigned int)((sig) >> SGIOV_SIG_TYPE_SHIFT))
#define SGIOV_SIG_ID(sig)                    ((unsigned int)((sig) >> SGIOV_SIG_ID_SHIFT) & SGIOV_SIG_ID_MASK)
#define SGIOV_SIG_VALUE(sig)                 ((unsigned int)(sig))
#define SGIOV_RING_ID(sid, dir)              (((sid) << 1) | (dir))
#define SGIOV_CHAIN(s1, s2, s3, s4)          ((unsigned int)(s1) | ((unsigned int)(s2) << 8) | ((unsigned int)(s3) << 16) | ((unsigned int)(s4) << 24))

/* Structures in guest memory (little-endian) */
#ifndef __ASSEMBLER__
#ifdef __KERNEL__
#include <linux/types.h>
#define SGIOV_U8 __u8
#define SGIOV_U16 __u16
#define SGIOV_U32 __u32
#define SGIOV_U64 __u64
#else
#include <stdint.h>
#define SGIOV_U8 uint8_t
#define SGIOV_U16 uint16_t
#define SGIOV_U32 uint32_t
#define SGIOV_U64 uint64_t
#endif
/* A command slot (CMD_BASE + index * 64). The driver fills it and sends SIG_H2D_CMD; the device writes status and result, then sends SIG_D2H_CMD_DONE. */
struct sgiov_cmd {
	SGIOV_U8   op;          /* 0x00: SGIOV_CMD_OP_*; the device writes 0 here when it takes the command, and ignores a CMD signal for a slot whose op is 0 (a repeated signal) */
	SGIOV_U8   flags;       /* 0x01: SGIOV_CMD_FLAG_* bits (ABI 1.2); otherwise 0 */
	SGIOV_U16  port;        /* 0x02: LISTEN, CONNECT, BIND: the port; NAME: written by the device */
	SGIOV_U32  sid;         /* 0x04: the socket the command is for (TENANT: unused, 0) */
	SGIOV_U64  tx_addr;     /* 0x08: CREATE: guest address of the tx ring; BIND, CONNECT (flag ADDR), NAME: bytes 0..7 of the IPv6 address (IPv4 as ::ffff:a.b.c.d), in network order */
	SGIOV_U64  rx_addr;     /* 0x10: CREATE: guest address of the rx ring; BIND, CONNECT (flag ADDR), NAME: bytes 8..15 of the address */
	SGIOV_U32  tx_size;     /* 0x18: CREATE: tx ring size, a power of two */
	SGIOV_U32  rx_size;     /* 0x1c: CREATE: rx ring size, a power of two */
	SGIOV_U32  arg;         /* 0x20: ACCEPT: the listening socket; CONNECT: the node (0: this one; else 1 + its index in the cluster's sorted names); TENANT: the weight in thousandths (1000: weight 1), >= 1 */
	SGIOV_U32  chain;       /* 0x24: CONNECT: the pipes' transformations, SGIOV_CHAIN(s1..s4) of SGIOV_STAGE_* (0: none) */
	SGIOV_U32  status;      /* 0x28: written by the device: 0 or an errno (SGIOV_STATUS_*) */
	SGIOV_U32  result;      /* 0x2c: written by the device: ACCEPT, CONNECT: the peer socket */
	SGIOV_U64  cookie;      /* 0x30: the driver's own; the device never touches it */
	SGIOV_U32  tenant;      /* 0x38: CREATE: the tenant the socket belongs to (0: the default tenant); TENANT: the tenant to set */
	SGIOV_U32  cap_mbps;    /* 0x3c: TENANT: the demand cap in Mbps per used accelerator (0: none); otherwise 0 */
} __attribute__((packed));
_Static_assert(sizeof(struct sgiov_cmd) == 64, "struct sgiov_cmd size");
/* A tenant's name and own keys (TENANT_CREATE, TENANT_KEYS: the command's tx_addr points at it). A key or VNI the flags do not give falls back to the device-wide one (CRYPTO_KEY, ENCAP_VNI). */
struct sgiov_tenant_cfg {
	SGIOV_U8   name[32];    /* 0x00: TENANT_CREATE: printable ASCII, NUL-padded; unique (EEXIST); empty: tenant<id> */
	SGIOV_U8   aes_key[32]; /* 0x20: AES-256-GCM key of its sockets (SGIOV_TENANT_CFG_AES) */
	SGIOV_U32  vni;         /* 0x40: VxLAN network id of its sockets, <= 0xffffff (SGIOV_TENANT_CFG_VNI) */
	SGIOV_U32  flags;       /* 0x44: SGIOV_TENANT_CFG_* bits; others EINVAL */
} __attribute__((packed));
_Static_assert(sizeof(struct sgiov_tenant_cfg) == 72, "struct sgiov_tenant_cfg size");
#endif /* __ASSEMBLER__ */
#define SGIOV_CMD_OFF_OP                     0x00
#define SGIOV_CMD_OFF_FLAGS                  0x01
#define SGIOV_CMD_OFF_PORT                   0x02
#define SGIOV_CMD_OFF_SID                    0x04
#define SGIOV_CMD_OFF_TX_ADDR                0x08
#define SGIOV_CMD_OFF_RX_ADDR                0x10
#define SGIOV_CMD_OFF_TX_SIZE                0x18
#define SGIOV_CMD_OFF_RX_SIZE                0x1c
#define SGIOV_CMD_OFF_ARG                    0x20
#define SGIOV_CMD_OFF_CHAIN                  0x24
#define SGIOV_CMD_OFF_STATUS                 0x28
#define SGIOV_CMD_OFF_RESULT                 0x2c
#define SGIOV_CMD_OFF_COOKIE                 0x30
#define SGIOV_CMD_OFF_TENANT                 0x38
#define SGIOV_CMD_OFF_CAP_MBPS               0x3c
#define SGIOV_CMD_SIZE                       64
#define SGIOV_TENANT_CFG_OFF_NAME            0x00
#define SGIOV_TENANT_CFG_OFF_AES_KEY         0x20
#define SGIOV_TENANT_CFG_OFF_VNI             0x40
#define SGIOV_TENANT_CFG_OFF_FLAGS           0x44
#define SGIOV_TENANT_CFG_SIZE                72

#endif /* SGIOV_ABI_H */
