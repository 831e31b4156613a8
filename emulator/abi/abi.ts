/**
 * The guest/device ABI of the emulated SG-IOV device: the one place where
 * register offsets, bit fields, codes and sizes are defined. The C header
 * the guest driver includes (guest-driver/include/sgiov_abi.h) is generated
 * from this file by gen-header.ts, and a unit test fails when the committed
 * header differs from what this file generates.
 */

export const ABI_VERSION = { major: 1, minor: 2 } as const;

/** PCI identity (defaults; the CLI can override the ids). 0x1234 is the
 *  vendor id that QEMU's own example devices (edu, bochs) use for devices
 *  no vendor owns; the device id spells "SG". */
export const PCI_IDS = {
  VENDOR_ID: 0x1234,
  DEVICE_ID: 0x5347,
  SUBSYS_VENDOR_ID: 0x1234,
  SUBSYS_ID: 0x0001,
  /** Network controller, "other" subclass. */
  CLASS_BASE: 0x02,
  CLASS_SUB: 0x80,
  CLASS_PROG_IF: 0x00,
  REVISION: 0x01,
} as const;

/** BAR layout. */
export const BARS = {
  /** Register file and trapped doorbells. */
  REGS_BAR: 0,
  REGS_BAR_SIZE: 0x10000,
  /** MSI-X table at offset 0, PBA at MSIX_PBA_OFFSET, in one BAR. */
  MSIX_BAR: 4,
  MSIX_BAR_SIZE: 0x1000,
  MSIX_TABLE_OFFSET: 0x0,
  MSIX_PBA_OFFSET: 0x800,
  MSIX_VECTORS: 16,
  /** Shared memory the device polls (memfd-backed, mmap-able): the host-to-device Cross-FIFO. */
  SHM_BAR: 2,
  SHM_BAR_SIZE: 0x20000,
} as const;

/**
 * Layout of the shared-memory BAR (BARS.SHM_BAR). Each index sits on its own
 * cache line. Indexes are free-running u32 counters; slot = index % slots.
 */
export const SHM = {
  /** Host writes: H2D signals published. */
  H2D_PROD: 0x000,
  /** Device writes: H2D signals consumed. */
  H2D_CONS: 0x040,
  /** Device writes: SHM_FLAG_* (NEED_KICK: the device sleeps; ring the KICK doorbell after publishing). */
  H2D_FLAGS: 0x080,
  /** Host writes: D2H signals consumed (the device never overruns it). */
  D2H_CONS: 0x0c0,
  /** Host writes 1 to ask for one interrupt on the next D2H signal (the device clears it when it fires). */
  D2H_ARM: 0x100,
  /** The H2D signal slots: 8 bytes each. */
  H2D_RING: 0x1000,
  H2D_SLOTS: 8192,
} as const;

export type Access = 'ro' | 'rw' | 'w1c' | 'wo';

export interface RegisterDef {
  name: string;
  offset: number;
  /** Width in bytes: 4 or 8. 8-byte registers also take 4-byte accesses to
   *  either half. */
  width: 4 | 8;
  access: Access;
  doc: string;
}

/** The register file in BAR0, in offset order. */
export const REGISTERS: readonly RegisterDef[] = [
  { name: 'ID', offset: 0x000, width: 4, access: 'ro', doc: 'Magic SGIOV_ID_MAGIC' },
  { name: 'VERSION', offset: 0x004, width: 4, access: 'ro', doc: 'ABI version: major << 16 | minor' },
  { name: 'CAPS', offset: 0x008, width: 4, access: 'ro', doc: 'Capability bits SGIOV_CAP_*' },
  { name: 'STATUS', offset: 0x00c, width: 4, access: 'ro', doc: 'Device status bits SGIOV_STATUS_*' },
  {
    name: 'CONTROL',
    offset: 0x010,
    width: 4,
    access: 'rw',
    doc: 'SGIOV_CONTROL_ENABLE; writing SGIOV_CONTROL_RESET resets the device (self-clearing)',
  },
  {
    name: 'ERROR_CODE',
    offset: 0x014,
    width: 4,
    access: 'w1c',
    doc: 'Latched first error SGIOV_ERR_*; any write clears it and STATUS.ERROR',
  },
  {
    name: 'ERROR_ADDR',
    offset: 0x018,
    width: 8,
    access: 'ro',
    doc: 'Guest address (or register offset) the latched error concerns',
  },
  {
    name: 'IRQ_STATUS',
    offset: 0x020,
    width: 4,
    access: 'w1c',
    doc: 'Pending interrupt causes SGIOV_IRQ_*; write 1 to clear',
  },
  { name: 'IRQ_MASK', offset: 0x024, width: 4, access: 'rw', doc: 'Enabled interrupt causes SGIOV_IRQ_*' },
  {
    name: 'ERR_VECTOR',
    offset: 0x028,
    width: 4,
    access: 'rw',
    doc: 'MSI-X vector raised for SGIOV_IRQ_ERROR',
  },
  { name: 'NUM_VECTORS', offset: 0x02c, width: 4, access: 'ro', doc: 'Number of MSI-X vectors' },
  {
    name: 'SCRATCH',
    offset: 0x030,
    width: 4,
    access: 'rw',
    doc: 'Free for the driver: reads back what was written',
  },
  { name: 'IRQ_COUNT', offset: 0x034, width: 4, access: 'ro', doc: 'MSI-X messages sent since reset' },
  {
    name: 'BAD_ACCESS_COUNT',
    offset: 0x038,
    width: 4,
    access: 'ro',
    doc: 'Accesses to undefined offsets or with unsupported sizes since reset',
  },
  { name: 'DMA_COMPLETED', offset: 0x03c, width: 4, access: 'ro', doc: 'DMA jobs completed since reset' },
  { name: 'DMA_SRC', offset: 0x100, width: 8, access: 'rw', doc: 'DMA job: guest address to read' },
  { name: 'DMA_DST', offset: 0x108, width: 8, access: 'rw', doc: 'DMA job: guest address to write' },
  {
    name: 'DMA_LEN',
    offset: 0x110,
    width: 4,
    access: 'rw',
    doc: 'DMA job: length in bytes, 1..SGIOV_DMA_MAX_LEN',
  },
  { name: 'DMA_OP', offset: 0x114, width: 4, access: 'rw', doc: 'DMA job: transformation SGIOV_DMA_OP_*' },
  {
    name: 'DMA_VECTOR',
    offset: 0x118,
    width: 4,
    access: 'rw',
    doc: 'DMA job: MSI-X vector raised on completion',
  },
  {
    name: 'DMA_STATUS',
    offset: 0x11c,
    width: 4,
    access: 'ro',
    doc: 'DMA engine state SGIOV_DMA_STATE_* of the last job',
  },
  {
    name: 'DMA_TAG',
    offset: 0x120,
    width: 4,
    access: 'ro',
    doc: 'Tag written to the doorbell for the last finished job',
  },
  // The data plane: sockets, warp pipes, Cross-FIFO.
  { name: 'MAX_SOCKETS', offset: 0x200, width: 4, access: 'ro', doc: 'Socket ids are 0..MAX_SOCKETS-1' },
  {
    name: 'H2D_MODE',
    offset: 0x204,
    width: 4,
    access: 'rw',
    doc: 'How the device learns of H2D signals: SGIOV_H2D_MODE_*',
  },
  {
    name: 'D2H_BASE',
    offset: 0x208,
    width: 8,
    access: 'rw',
    doc: 'Guest address of the D2H signal FIFO (8-byte slots)',
  },
  {
    name: 'D2H_SLOTS',
    offset: 0x210,
    width: 4,
    access: 'rw',
    doc: 'D2H FIFO slots: a power of two, 64..1048576',
  },
  { name: 'D2H_VECTOR', offset: 0x214, width: 4, access: 'rw', doc: 'MSI-X vector for D2H signals' },
  {
    name: 'D2H_PROD_ADDR',
    offset: 0x218,
    width: 8,
    access: 'rw',
    doc: 'Guest address of a u32 the device updates with the D2H producer index',
  },
  {
    name: 'CMD_BASE',
    offset: 0x220,
    width: 8,
    access: 'rw',
    doc: 'Guest address of the command slots (struct sgiov_cmd, 64 bytes each)',
  },
  {
    name: 'CMD_SLOTS',
    offset: 0x228,
    width: 4,
    access: 'rw',
    doc: 'Command slots: a power of two, 1..65536',
  },
  {
    name: 'IRQ_MOD_COUNT',
    offset: 0x22c,
    width: 4,
    access: 'rw',
    doc: 'Interrupt moderation: raise once this many D2H signals are pending (0 or 1: at once)',
  },
  {
    name: 'IRQ_MOD_USECS',
    offset: 0x230,
    width: 4,
    access: 'rw',
    doc: 'Interrupt moderation: or once the oldest pending signal is this old',
  },
  {
    name: 'DP_CONTROL',
    offset: 0x234,
    width: 4,
    access: 'rw',
    doc: 'SGIOV_DP_CONTROL_START starts the data plane (FIFOs configured); clearing it stops it',
  },
  { name: 'DP_STATUS', offset: 0x238, width: 4, access: 'ro', doc: 'SGIOV_DP_STATUS_* bits' },
  { name: 'SOCKETS_OPEN', offset: 0x23c, width: 4, access: 'ro', doc: 'Sockets that exist now' },
  {
    name: 'H2D_SIGNALS',
    offset: 0x240,
    width: 4,
    access: 'ro',
    doc: 'H2D signals consumed since start (wraps)',
  },
  {
    name: 'D2H_SIGNALS',
    offset: 0x244,
    width: 4,
    access: 'ro',
    doc: 'D2H signals produced since start (wraps)',
  },
  { name: 'KICKS', offset: 0x248, width: 4, access: 'ro', doc: 'KICK doorbells received' },
  {
    name: 'SIGNAL_ERRORS',
    offset: 0x24c,
    width: 4,
    access: 'ro',
    doc: 'H2D signals rejected (bad id, type or value)',
  },
  {
    name: 'MSGS_MOVED',
    offset: 0x250,
    width: 4,
    access: 'ro',
    doc: 'Messages moved through warp pipes (wraps)',
  },
  {
    name: 'CRYPTO_KEY',
    offset: 0x260,
    width: 8,
    access: 'wo',
    doc: 'AES-256-GCM key of the crypto engine, 4 x 64 bits at 0x260..0x27f (write-only; reads 0)',
  },
  { name: 'CRYPTO_KEY1', offset: 0x268, width: 8, access: 'wo', doc: 'key bits 64..127' },
  { name: 'CRYPTO_KEY2', offset: 0x270, width: 8, access: 'wo', doc: 'key bits 128..191' },
  { name: 'CRYPTO_KEY3', offset: 0x278, width: 8, access: 'wo', doc: 'key bits 192..255' },
  {
    name: 'ENCAP_VNI',
    offset: 0x280,
    width: 4,
    access: 'rw',
    doc: 'VxLAN network id the encapsulation engine writes and the decapsulation engine expects',
  },
  {
    name: 'BYTES_MOVED',
    offset: 0x288,
    width: 8,
    access: 'ro',
    doc: 'Bytes moved through warp pipes since start (ABI 1.2; what a guest test reads around a program)',
  },
] as const;

/** Trapped doorbells, also in BAR0. A 4-byte write of a tag starts the job. */
export const DOORBELLS = {
  BASE: 0x1000,
  SIZE: 0x1000,
  DMA: 0x1000,
  /** Wakes the device to read H2D signals (needed only when SHM H2D_FLAGS has NEED_KICK, or in KICK mode). */
  KICK: 0x1004,
} as const;

export const CONSTANTS = {
  ID_MAGIC: 0x53474956, // "SGIV"
  DMA_MAX_LEN: 1 << 20,
  MAX_SOCKETS_DEFAULT: 131072,
  RING_MIN: 4096,
  RING_MAX: 1 << 28,
  RING_DEFAULT: 1 << 20,
  CMD_SLOT_SIZE: 64,
  SIGNAL_SIZE: 8,
  /** Signals: type in bits 63..56, id (ring or socket or command slot) in 55..32, value in 31..0. */
  SIG_TYPE_SHIFT: 56,
  SIG_ID_SHIFT: 32,
  SIG_ID_MASK: 0xffffff,
  /** connect() to this port makes a loopback pipe: what the socket sends comes back to it (executor L). */
  PORT_LOOPBACK: 0,
  /** AES-256-GCM framing of the crypto engine: IV before the ciphertext, tag after it. */
  CRYPTO_IV_LEN: 12,
  CRYPTO_TAG_LEN: 16,
  /** The encapsulation header (VxLAN-style: flags, reserved, 24-bit VNI, reserved). */
  ENCAP_HDR_LEN: 8,
  /** Tenants the device holds at once (ids 0..MAX_TENANTS_DEFAULT-1; 0 is the default tenant and always exists). */
  MAX_TENANTS_DEFAULT: 256,
  /** struct sgiov_tenant_cfg.name: bytes, NUL-padded. */
  TENANT_NAME_LEN: 32,
} as const;

/** Bit fields: name -> bit number. */
export const BITS = {
  CAP: { DMA_ENGINE: 0, MSIX: 1, SOCKETS: 2, SHM_FIFO: 3 },
  STATUS: { READY: 0, ENABLED: 1, ERROR: 2, BUS_MASTER: 3 },
  CONTROL: { ENABLE: 0, RESET: 31 },
  IRQ: { DMA_DONE: 0, ERROR: 1 },
  DP_CONTROL: { START: 0 },
  DP_STATUS: { RUNNING: 0, POLLING: 1 },
  SHM_FLAG: { NEED_KICK: 0 },
  /**
   * A command slot's flags (ABI 1.2, IP addressing). ADDR: LISTEN on the
   * socket's bound (address, port), CONNECT to the (address, port) in the
   * slot. V6ONLY: BIND, an IPv6 wildcard that does not take IPv4
   * connections. PEER: NAME reports the peer's name, not the socket's own.
   */
  CMD_FLAG: { ADDR: 0, V6ONLY: 1, PEER: 2 },
  /** struct sgiov_tenant_cfg.flags: which of the tenant's own keys the config gives. */
  TENANT_CFG: { AES: 0, VNI: 1 },
} as const;

/** Enumerations: name -> value. */
export const ENUMS = {
  DMA_OP: { COPY: 0, INVERT: 1 },
  DMA_STATE: { IDLE: 0, DONE: 1, ERROR: 2 },
  /** Error codes latched in ERROR_CODE (the first error wins until cleared). */
  ERR: {
    NONE: 0,
    DMA_UNMAPPED: 1,
    DMA_BUS_MASTER_OFF: 2,
    DMA_BAD_LENGTH: 3,
    BAD_OPCODE: 4,
    BAD_VECTOR: 5,
    BAD_DOORBELL: 6,
    NOT_ENABLED: 7,
    /** DP_CONTROL.START with FIFOs or command slots badly configured (ERROR_ADDR: the register offset). */
    DP_BAD_CONFIG: 8,
    /** An MMIO access failed (a completer abort; fault injection): a read returned all-ones, a write was dropped. ERROR_ADDR: the BAR offset. */
    ACCESS_FAILED: 9,
    /** A poisoned (corrupted) MMIO access, caught by its integrity check: a read returned all-ones, a write was discarded. ERROR_ADDR: the BAR offset. */
    POISONED: 10,
    /** The DMA engine's data failed its CRC check (read or written corrupted): DMA_STATUS is ERROR. ERROR_ADDR: the source or destination. */
    DMA_CORRUPTED: 11,
    /** The device reset itself (an internal fault): the data plane is stopped, every socket is gone, CONTROL.ENABLE is clear. Latched after the reset. */
    DEVICE_RESET: 12,
  },
  H2D_MODE: { HYBRID: 0, POLL: 1, KICK: 2 },
  /** Host-to-device signal types. */
  SIG_H2D: {
    /** id: tx ring; value: the ring's new tail. Publishes exactly one message: the bytes from the old tail. A repeat of the current tail is ignored (counted). */
    TX_TAIL: 0x01,
    /** id: rx ring; value: the ring's new head (bytes the application consumed). A repeat is ignored. */
    RX_HEAD: 0x02,
    /** id: command slot index; run that command. */
    CMD: 0x03,
    NOP: 0x04,
    /**
     * value: a D2H FIFO index. A driver that zeroes each D2H slot after reading
     * it finds a lost signal as a slot still 0 below the producer index; it
     * sends RESYNC with that index and waits: the device writes the lost
     * signal into that slot again (it keeps every signal it could not deliver
     * until the driver asks or the data plane stops).
     */
    RESYNC: 0x05,
  },
  /**
   * Device-to-host signal types. The device may repeat a state signal
   * (TX_HEAD, RX_TAIL, CMD_DONE, SOCK_ERROR, EVENT PEER_CLOSED): a driver
   * treats a head or tail that does not move, a CMD_DONE for a slot it is
   * not waiting on, and an error or event it already has as no news. Event
   * signals (MSG_ERROR, DIGEST, DEV_ERROR, EVENT CONN_PENDING) are never
   * repeated. A signal lost on its way is recovered with SIG_H2D_RESYNC.
   */
  SIG_D2H: {
    /** id: tx ring; value: the ring's new head (space freed for the sender). */
    TX_HEAD: 0x81,
    /** id: rx ring; value: the ring's new tail. Delivers exactly one message: the bytes from the old tail. */
    RX_TAIL: 0x82,
    /** id: command slot index; value: status (0 or an errno). */
    CMD_DONE: 0x83,
    /** id: socket; value: SGIOV_EVENT_*. */
    EVENT: 0x84,
    /** id: socket; value: SGIOV_SERR_*. The socket is in the error state from now on. */
    SOCK_ERROR: 0x85,
    /** id: the id the bad signal named; value: SGIOV_SERR_*. For signals that name no socket. */
    DEV_ERROR: 0x86,
    /** id: rx ring; value: SGIOV_SERR_*. One message failed a transformation (bad tag, bad header): it is not delivered; the next ones are. */
    MSG_ERROR: 0x87,
    /** id: rx ring (executor M: the digest of the message just delivered) or tx ring (executor A: of the message consumed); value: CRC32C. */
    DIGEST: 0x88,
  },
  RING_DIR: { TX: 0, RX: 1 },
  /**
   * Stages of a pipe's chain (CONNECT's chain field: stage 1 in bits 7..0,
   * stage 2 in 15..8, ...; 0 ends it). In-line stages transform the message
   * (executors I and L); CRC32C passes it unchanged and sends its digest to
   * the receiver beside it (M); LOOKASIDE_CRC32C consumes it and returns
   * only the digest to the sender (A). Without FULL_COPY a message moves
   * zero-copy (Z): straight from the sender's ring into the sink, the
   * sender's space freed when it has landed. FULL_COPY (F) copies it into
   * the device's staging memory first and frees the sender's space at
   * once; it lands when the sink has room.
   */
  STAGE: {
    NONE: 0,
    ENCRYPT: 1,
    DECRYPT: 2,
    ENCAP: 3,
    DECAP: 4,
    CRC32C: 5,
    LOOKASIDE_CRC32C: 6,
    FULL_COPY: 7,
  },
  /** TENANT sets a tenant's weight and demand cap for the accelerator schedulers (tenant, arg, cap_mbps). */
  CMD_OP: {
    CREATE: 1,
    LISTEN: 2,
    CONNECT: 3,
    ACCEPT: 4,
    CLOSE: 5,
    TENANT: 6,
    /** ABI 1.2: gives the socket its local (address, port); port 0: the device picks an ephemeral one (the result). */
    BIND: 16,
    /** ABI 1.2: arg 0 SHUT_RD, 1 SHUT_WR, 2 SHUT_RDWR (Linux's values). SHUT_WR: the peer reads EOF after what was sent, and may still send. */
    SHUTDOWN: 17,
    /** ABI 1.2: the device writes the socket's name (flag PEER: its peer's) into the slot's addr and port; result 1 when it has one. */
    NAME: 18,
    /**
     * Tenants made by the driver. TENANT_CREATE: tenant = the id wanted (0: the
     * lowest free one), arg = the weight in thousandths (>= 1), cap_mbps, tx_addr
     * = guest address of a struct sgiov_tenant_cfg (0: none); result = the id.
     * TENANT_DELETE: tenant = the id; EBUSY while a socket of it exists.
     * TENANT_KEYS: tenant = the id, tx_addr = a struct sgiov_tenant_cfg whose
     * flags say which keys to set (its name is ignored).
     */
    TENANT_CREATE: 32,
    TENANT_DELETE: 33,
    TENANT_KEYS: 34,
  },
  /** Command status values are Linux errno numbers, so a driver can return -status. */
  STATUS: {
    OK: 0,
    ENOENT: 2,
    EAGAIN: 11,
    ENOMEM: 12,
    EFAULT: 14,
    EBUSY: 16,
    EEXIST: 17,
    EINVAL: 22,
    EPIPE: 32,
    EMSGSIZE: 90,
    EADDRINUSE: 98,
    ENETUNREACH: 101,
    EISCONN: 106,
    ENOTCONN: 107,
    ECONNREFUSED: 111,
    EADDRNOTAVAIL: 99,
    EAFNOSUPPORT: 97,
    EOPNOTSUPP: 95,
    /** TENANT_CREATE: the tenant table is full. */
    ENOSPC: 28,
  },
  EVENT: {
    /** A listener has a connection waiting for accept. */
    CONN_PENDING: 1,
    /** A connect() completed: the peer accepted (or the loopback pipe is up). */
    CONNECTED: 2,
    /** The peer closed: no more messages will arrive after those already delivered. */
    PEER_CLOSED: 3,
    /** The peer shut down its sending side (SHUTDOWN, SHUT_WR): no more messages after those delivered; this socket may still send. */
    PEER_SHUTDOWN: 4,
  },
  /** Why a socket went to the error state (SOCK_ERROR) or a signal was rejected (DEV_ERROR). */
  SERR: {
    NO_SUCH_RING: 1,
    SOCKET_CLOSED: 2,
    BAD_TAIL: 3,
    BAD_HEAD: 4,
    MSG_TOO_LARGE: 5,
    UNKNOWN_SIGNAL: 6,
    RING_UNMAPPED: 7,
    NOT_CONNECTED: 8,
    AUTH_FAILED: 9,
    BAD_ENCAP: 10,
    /** MSG_ERROR: the message's data failed the device's data-path CRC (corrupted when read or written); it is not delivered. */
    CORRUPTED: 11,
    /** SOCK_ERROR / DEV_ERROR: an H2D signal arrived poisoned (corrupted) and was discarded. */
    POISONED: 12,
    /** MSG_ERROR: a DMA of the message (from the sender's ring or into the receiver's) failed; it is not delivered. */
    DMA_ERROR: 13,
    /** DEV_ERROR (id 0xffffff): the device is resetting itself; every socket is gone (ERROR_CODE reads SGIOV_ERR_DEVICE_RESET). */
    DEVICE_RESET: 14,
    /** MSG_ERROR / SOCK_ERROR: an internal device fault (an accelerator job failed). */
    DEVICE_FAULT: 15,
    /** The socket's peer is on another node and the link to it failed (or the peer broke the pipe protocol). */
    LINK_FAILED: 20,
  },
} as const;

export interface StructField {
  name: string;
  offset: number;
  type: 'u8' | 'u16' | 'u32' | 'u64';
  doc: string;
  /** An array of this many elements (absent: one). */
  count?: number;
}

/** Structures in guest memory, as the device reads and writes them. */
export const STRUCTS: Record<string, { size: number; doc: string; fields: StructField[] }> = {
  cmd: {
    size: 64,
    doc: 'A command slot (CMD_BASE + index * 64). The driver fills it and sends SIG_H2D_CMD; the device writes status and result, then sends SIG_D2H_CMD_DONE.',
    fields: [
      {
        name: 'op',
        offset: 0,
        type: 'u8',
        doc: 'SGIOV_CMD_OP_*; the device writes 0 here when it takes the command, and ignores a CMD signal for a slot whose op is 0 (a repeated signal)',
      },
      { name: 'flags', offset: 1, type: 'u8', doc: 'SGIOV_CMD_FLAG_* bits (ABI 1.2); otherwise 0' },
      {
        name: 'port',
        offset: 2,
        type: 'u16',
        doc: 'LISTEN, CONNECT, BIND: the port; NAME: written by the device',
      },
      { name: 'sid', offset: 4, type: 'u32', doc: 'the socket the command is for (TENANT: unused, 0)' },
      {
        name: 'tx_addr',
        offset: 8,
        type: 'u64',
        doc: 'CREATE: guest address of the tx ring; BIND, CONNECT (flag ADDR), NAME: bytes 0..7 of the IPv6 address (IPv4 as ::ffff:a.b.c.d), in network order',
      },
      {
        name: 'rx_addr',
        offset: 16,
        type: 'u64',
        doc: 'CREATE: guest address of the rx ring; BIND, CONNECT (flag ADDR), NAME: bytes 8..15 of the address',
      },
      { name: 'tx_size', offset: 24, type: 'u32', doc: 'CREATE: tx ring size, a power of two' },
      { name: 'rx_size', offset: 28, type: 'u32', doc: 'CREATE: rx ring size, a power of two' },
      {
        name: 'arg',
        offset: 32,
        type: 'u32',
        doc: "ACCEPT: the listening socket; CONNECT: the node (0: this one; else 1 + its index in the cluster's sorted names); TENANT: the weight in thousandths (1000: weight 1), >= 1",
      },
      {
        name: 'chain',
        offset: 36,
        type: 'u32',
        doc: "CONNECT: the pipes' transformations, SGIOV_CHAIN(s1..s4) of SGIOV_STAGE_* (0: none)",
      },
      {
        name: 'status',
        offset: 40,
        type: 'u32',
        doc: 'written by the device: 0 or an errno (SGIOV_STATUS_*)',
      },
      {
        name: 'result',
        offset: 44,
        type: 'u32',
        doc: 'written by the device: ACCEPT, CONNECT: the peer socket',
      },
      { name: 'cookie', offset: 48, type: 'u64', doc: "the driver's own; the device never touches it" },
      {
        name: 'tenant',
        offset: 56,
        type: 'u32',
        doc: 'CREATE: the tenant the socket belongs to (0: the default tenant); TENANT: the tenant to set',
      },
      {
        name: 'cap_mbps',
        offset: 60,
        type: 'u32',
        doc: 'TENANT: the demand cap in Mbps per used accelerator (0: none); otherwise 0',
      },
    ],
  },
  tenant_cfg: {
    size: 72,
    doc: "A tenant's name and own keys (TENANT_CREATE, TENANT_KEYS: the command's tx_addr points at it). A key or VNI the flags do not give falls back to the device-wide one (CRYPTO_KEY, ENCAP_VNI).",
    fields: [
      {
        name: 'name',
        offset: 0,
        type: 'u8',
        count: 32,
        doc: 'TENANT_CREATE: printable ASCII, NUL-padded; unique (EEXIST); empty: tenant<id>',
      },
      {
        name: 'aes_key',
        offset: 32,
        type: 'u8',
        count: 32,
        doc: 'AES-256-GCM key of its sockets (SGIOV_TENANT_CFG_AES)',
      },
      {
        name: 'vni',
        offset: 64,
        type: 'u32',
        doc: 'VxLAN network id of its sockets, <= 0xffffff (SGIOV_TENANT_CFG_VNI)',
      },
      { name: 'flags', offset: 68, type: 'u32', doc: 'SGIOV_TENANT_CFG_* bits; others EINVAL' },
    ],
  },
};

export type RegName = (typeof REGISTERS)[number]['name'];

export function reg(name: string): RegisterDef {
  const r = REGISTERS.find((x) => x.name === name);
  if (!r) throw new Error(`no register ${name} in the ABI`);
  return r;
}
