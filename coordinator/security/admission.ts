/**
 * Who may hold a connection slot. Slots are for authenticated sockets only:
 *
 * - an authenticated socket (one that passed a namespace's token check)
 *   counts against `--max-connections`, against its address's
 *   `--max-connections-per-ip`, and, with per-participant credentials,
 *   against its credential's `--max-connections-per-credential`;
 * - a raw transport that has not (yet) authenticated holds no slot. It sits
 *   in a small waiting pool (`pendingCap` in all, `pendingPerIp` per address)
 *   and, when the pool is full, the OLDEST waiting transport is closed to
 *   make room for the new one. A real client authenticates within
 *   milliseconds of opening its transport, so it is never the oldest: raw
 *   transports opened and held by an attacker only push each other out.
 *
 * New transports are refused (HTTP 403) only when the authenticated sockets
 * already fill `--max-connections` (or the address's share) and the pool is
 * full too: nobody could be admitted then anyway.
 * Addresses are the TCP peer's (no X-Forwarded-For: it is client-supplied).
 */

export interface AdmissionLimits {
  readonly maxConnections: number;
  readonly maxPerIp: number;
  readonly pendingCap: number;
  readonly pendingPerIp: number;
}

/** A raw transport as the pool sees it: where it came from, and how to close it. */
export interface PendingTransport {
  readonly address: string;
  close(): void;
}

/** Unauthenticated transports that may wait at once: 10 % of the connection cap, at least 16. */
export function defaultPendingCap(maxConnections: number): number {
  return Math.max(16, Math.ceil(maxConnections / 10));
}

/** One address may hold a quarter of the cap, at least 64 (a campus NAT), never more than the cap. */
export function defaultMaxPerIp(maxConnections: number): number {
  return Math.min(maxConnections, Math.max(64, Math.ceil(maxConnections / 4)));
}

/**
 * Waiting transports per address: half the pool, so one address cannot push
 * out everyone else's handshakes, yet a NAT or a lab of tabs connecting at
 * once is not pushed out by itself.
 */
export function defaultPendingPerIp(pendingCap: number): number {
  return Math.max(1, Math.ceil(pendingCap / 2));
}

export class ConnectionAdmission {
  /** Waiting transports, oldest first (a Map keeps insertion order). */
  private readonly pending = new Map<PendingTransport, string>();
  private readonly pendingByIp = new Map<string, number>();
  private readonly authenticatedByIp = new Map<string, number>();
  private readonly authenticatedByCredential = new Map<string, number>();
  private authenticatedTotal = 0;
  /** Waiting transports closed to make room (for the log and tests). */
  evicted = 0;

  constructor(readonly limits: AdmissionLimits) {}

  get authenticated(): number {
    return this.authenticatedTotal;
  }

  get waiting(): number {
    return this.pending.size;
  }

  /**
   * Why a new transport from `address` is refused (HTTP 403), or undefined to
   * accept it. Changes nothing. While slots are left, the pool makes room by
   * pushing out its oldest, so nothing is refused. Once the authenticated
   * sockets fill the cap (in all, or the address's share), the pool stops
   * pushing out: transports that fit in it get a coded TOO_MANY_CONNECTIONS
   * from the namespace handshake, and those beyond it get 403.
   */
  transportRefusal(address: string): string | undefined {
    const { maxConnections, maxPerIp, pendingCap, pendingPerIp } = this.limits;
    if (this.authenticatedTotal >= maxConnections && this.pending.size >= pendingCap) {
      return `the coordinator is at its limit of ${maxConnections} connections; retry later`;
    }
    if ((this.authenticatedByIp.get(address) ?? 0) >= maxPerIp && (this.pendingByIp.get(address) ?? 0) >= pendingPerIp) {
      return `this address already holds ${maxPerIp} connections (--max-connections-per-ip); retry later`;
    }
    return undefined;
  }

  /** Why an authenticated socket may not take a slot (TOO_MANY_CONNECTIONS), or undefined. Changes nothing. */
  slotRefusal(address: string, credential: string | undefined, maxPerCredential: number | undefined): string | undefined {
    const { maxConnections, maxPerIp } = this.limits;
    if (this.authenticatedTotal >= maxConnections) return `the coordinator is at its limit of ${maxConnections} connections; retry later`;
    if ((this.authenticatedByIp.get(address) ?? 0) >= maxPerIp)
      return `this address already holds ${maxPerIp} connections (--max-connections-per-ip); retry later`;
    if (
      credential !== undefined &&
      maxPerCredential !== undefined &&
      (this.authenticatedByCredential.get(credential) ?? 0) >= maxPerCredential
    ) {
      return `this credential already holds ${maxPerCredential} connection(s) (--max-connections-per-credential); close one first`;
    }
    return undefined;
  }

  /** A new raw transport: it waits, after the oldest waiting ones are closed if the pool is full. */
  transportOpened(transport: PendingTransport): void {
    const address = transport.address;
    while ((this.pendingByIp.get(address) ?? 0) >= this.limits.pendingPerIp) this.evictOldest(address);
    while (this.pending.size >= this.limits.pendingCap) this.evictOldest(undefined);
    this.pending.set(transport, address);
    bump(this.pendingByIp, address, 1);
  }

  /** The transport closed (for any reason): it leaves the pool, if it was waiting. */
  transportClosed(transport: PendingTransport): void {
    this.unpend(transport);
  }

  /** A socket on `transport` authenticated: the transport stops waiting and the socket takes a slot. */
  authenticate(transport: PendingTransport, address: string, credential: string | undefined): void {
    this.unpend(transport);
    this.authenticatedTotal++;
    bump(this.authenticatedByIp, address, 1);
    if (credential !== undefined) bump(this.authenticatedByCredential, credential, 1);
  }

  /** An authenticated socket closed: its slot is free. */
  release(address: string, credential: string | undefined): void {
    this.authenticatedTotal = Math.max(0, this.authenticatedTotal - 1);
    bump(this.authenticatedByIp, address, -1);
    if (credential !== undefined) bump(this.authenticatedByCredential, credential, -1);
  }

  private unpend(transport: PendingTransport): void {
    const address = this.pending.get(transport);
    if (address === undefined) return;
    this.pending.delete(transport);
    bump(this.pendingByIp, address, -1);
  }

  private evictOldest(address: string | undefined): void {
    for (const [transport, from] of this.pending) {
      if (address !== undefined && from !== address) continue;
      this.unpend(transport);
      this.evicted++;
      transport.close();
      return;
    }
  }
}

function bump(counts: Map<string, number>, key: string, by: number): void {
  const next = (counts.get(key) ?? 0) + by;
  if (next > 0) counts.set(key, next);
  else counts.delete(key);
}
