import type { Server as HttpServer } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Ack } from '../../core/protocol/errors.ts';
import type { FederationStatus, RoundRecord } from '../../core/protocol/status.ts';
import { TrafficCounter } from '../cluster/traffic.ts';

/** What the metrics read from the engine at scrape time. */
export interface MetricsSource {
  /** The whole status (every round's record): read once per scrape. */
  status(): FederationStatus;
}

/** Seconds from a round's start to an accepted update. */
const UPDATE_LATENCY_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** Seconds from a round's opening to its close. */
const ROUND_DURATION_BUCKETS = [1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

/**
 * The coordinator's Prometheus metrics (docs/metrics.md), one registry per
 * coordinator. Three kinds of source, each as cheap as it can be on the hot
 * path:
 * - live, one call per event: every answer to a request that carries an update (`updateAnswered`), and the
 *   bytes every TCP connection carried (`countTransportBytes`);
 * - at scrape time, from the engine's status: participants, rounds by
 *   outcome, refusals by code, and the round-duration and update-latency
 *   histograms fed with each round record once, when the first scrape after
 *   the round's close sees it;
 * - set by the cluster layer: the leader flag and the Redis round trip.
 */
export class CoordinatorMetrics {
  readonly registry = new Registry();
  private readonly updatesAccepted: Counter;
  private readonly updatesRejected: Counter<'code'>;
  private readonly updateBytesAccepted: Counter;
  private readonly leader: Gauge;
  private redisRoundTrip: Gauge | undefined;
  private readonly roundDuration: Histogram;
  private readonly updateLatency: Histogram;
  /** Rounds whose records the histograms have seen. */
  private readonly observedRounds = new Set<number>();
  /** The server's one transport-byte counter, shared with the cluster's node registry; set by countTransportBytes. */
  private traffic: TrafficCounter | undefined;
  /** The status of the scrape under way: one per scrape, shared by the collectors. */
  private scrape: FederationStatus | undefined;

  private clusterNode: { readonly isLeader: boolean; readonly redisRoundTripMs: number | undefined } | undefined;

  constructor(private readonly source: MetricsSource) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const status = (): FederationStatus => this.scrape ?? this.source.status();
    const observeRounds = () => this.observeNewRounds(status().history);
    new Gauge({
      name: 'fl_participants',
      help: 'Participants this coordinator knows, by whether they are connected now',
      labelNames: ['state'],
      registers,
      collect() {
        const totals = status().participantTotals;
        const known = totals?.known ?? status().participants.length;
        const connected = totals?.connected ?? status().participants.filter((p) => p.connected).length;
        this.set({ state: 'connected' }, connected);
        this.set({ state: 'disconnected' }, known - connected);
      },
    });
    new Gauge({
      name: 'fl_round',
      help: 'The latest round number (open or closed)',
      registers,
      collect() {
        this.set(status().round);
      },
    });
    new Gauge({
      name: 'fl_model_version',
      help: 'The global model version',
      registers,
      collect() {
        this.set(status().modelVersion);
      },
    });
    new Counter({
      name: 'fl_rounds_total',
      help: 'Closed rounds by outcome',
      labelNames: ['outcome'],
      registers,
      collect() {
        this.reset();
        for (const record of status().history) this.inc({ outcome: record.outcome });
      },
    });
    new Counter({
      name: 'fl_requests_rejected_total',
      help: 'Refused requests by error code, every kind (handshakes, rate limit, updates, secure aggregation, ...)',
      labelNames: ['code'],
      registers,
      collect() {
        this.reset();
        for (const [code, count] of Object.entries(status().rejections)) this.inc({ code }, count);
      },
    });
    new Counter({
      name: 'fl_round_update_bytes_total',
      help: 'Bytes of update frames received, summed over closed rounds',
      registers,
      collect() {
        this.reset();
        this.inc(status().history.reduce((sum, r) => sum + r.bytesIn, 0));
      },
    });
    new Counter({
      name: 'fl_round_model_bytes_total',
      help: 'Bytes of model frames sent to selected participants, summed over closed rounds',
      registers,
      collect() {
        this.reset();
        this.inc(status().history.reduce((sum, r) => sum + r.bytesOut, 0));
      },
    });
    const traffic = () => this.traffic;
    new Counter({
      name: 'fl_transport_received_bytes_total',
      help: 'Bytes received on every TCP connection of this node (HTTP, WebSocket, long-polling; TLS included)',
      registers,
      collect() {
        this.reset();
        this.inc(traffic()?.bytesIn ?? 0);
      },
    });
    new Counter({
      name: 'fl_transport_sent_bytes_total',
      help: 'Bytes sent on every TCP connection of this node (HTTP, WebSocket, long-polling; TLS included)',
      registers,
      collect() {
        this.reset();
        this.inc(traffic()?.bytesOut ?? 0);
      },
    });
    this.updatesAccepted = new Counter({ name: 'fl_updates_accepted_total', help: 'Updates accepted into a round', registers });
    this.updatesRejected = new Counter({
      name: 'fl_updates_rejected_total',
      help: 'Updates refused, by error code',
      labelNames: ['code'],
      registers,
    });
    this.updateBytesAccepted = new Counter({
      name: 'fl_updates_accepted_bytes_total',
      help: "Bytes of update frames accepted into a round on this node (on a cluster, this node's own participants')",
      registers,
    });
    this.updateLatency = new Histogram({
      name: 'fl_update_latency_seconds',
      help: "From a round's start to each accepted update (observed once the round has closed)",
      buckets: UPDATE_LATENCY_BUCKETS,
      registers,
      collect: observeRounds,
    });
    this.roundDuration = new Histogram({
      name: 'fl_round_duration_seconds',
      help: "From a round's opening to its close (observed once the round has closed)",
      buckets: ROUND_DURATION_BUCKETS,
      registers,
      collect: observeRounds,
    });
    this.leader = new Gauge({
      name: 'fl_leader',
      help: '1 while this node drives the rounds (always on a single node), 0 otherwise',
      registers,
    });
    this.leader.set(1);
  }

  /** A request that carries an update was answered (participant-events.ts says which requests do). */
  updateAnswered(result: Ack<unknown>): void {
    if (result.ok) this.updatesAccepted.inc();
    else this.updatesRejected.inc({ code: result.error.code });
  }

  /** An update frame of `bytes` was accepted into a round here (participant-events.ts). */
  updateAccepted(bytes: number): void {
    this.updateBytesAccepted.inc(bytes);
  }

  /** Counts the bytes of every TCP connection `server` accepts, through the server's one TrafficCounter (the cluster reads the same). */
  countTransportBytes(server: HttpServer): void {
    this.traffic = TrafficCounter.of(server);
  }

  /** The cluster layer says whether this node leads (a single coordinator always does). */
  setLeader(isLeader: boolean): void {
    this.leader.set(isLeader ? 1 : 0);
  }

  /** The cluster layer's latest Redis round trip (timed on its heartbeat's calls), ms. The gauge exists only once it has been set: a node without Redis has none. */
  setRedisRoundTripMs(ms: number): void {
    this.redisRoundTrip ??= new Gauge({
      name: 'fl_redis_round_trip_seconds',
      help: 'The latest measured round trip to Redis',
      registers: [this.registry],
    });
    this.redisRoundTrip.set(ms / 1000);
  }

  /** On a cluster, the leader flag and the Redis round trip are read from this node at every scrape. */
  followCluster(node: { readonly isLeader: boolean; readonly redisRoundTripMs: number | undefined }): void {
    this.clusterNode = node;
  }

  /** The text exposition and its content type. */
  async render(): Promise<{ readonly contentType: string; readonly body: string }> {
    this.scrape = this.source.status();
    if (this.clusterNode) {
      this.setLeader(this.clusterNode.isLeader);
      const roundTrip = this.clusterNode.redisRoundTripMs;
      if (roundTrip !== undefined) this.setRedisRoundTripMs(roundTrip);
    }
    try {
      return { contentType: this.registry.contentType, body: await this.registry.metrics() };
    } finally {
      this.scrape = undefined;
    }
  }

  /** Feeds each closed round's record into the histograms once. */
  private observeNewRounds(history: readonly RoundRecord[]): void {
    for (const record of history) {
      if (this.observedRounds.has(record.round)) continue;
      this.observedRounds.add(record.round);
      this.roundDuration.observe(record.durationMs / 1000);
      for (const p of record.participants ?? []) if (p.outcome === 'received') this.updateLatency.observe(p.durationMs / 1000);
    }
  }
}
