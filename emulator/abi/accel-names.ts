/** The engines a chain can use. `rdma` carries a message between two sockets. */
export const ACCEL_NAMES = ['rdma', 'crypto', 'encap', 'lookaside'] as const;
export type AccelName = (typeof ACCEL_NAMES)[number];
