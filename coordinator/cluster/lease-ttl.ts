/** The leader lease's time to live: its default and bounds (`--leader-lease-ms`), apart from lease.ts so option parsing loads no Redis client. */

/** Default lease: another node leads at most this long after the leader stops renewing. */
export const DEFAULT_LEASE_TTL_MS = 5_000;
/** Renewals go every third of the lease, each with that long to answer: below this a loopback round trip under load would not fit. */
export const MIN_LEASE_TTL_MS = 300;
/** Ten minutes: a longer lease leaves a federation without a leader for longer after a crash than anyone should wait. */
export const MAX_LEASE_TTL_MS = 600_000;

export function isLeaseTtl(ms: number): boolean {
  return Number.isInteger(ms) && ms >= MIN_LEASE_TTL_MS && ms <= MAX_LEASE_TTL_MS;
}
