import type { ClientInfo } from '../../core/protocol/messages.ts';
import type { ParticipantState, ParticipantStatus } from '../../core/protocol/status.ts';
import type { UniformSource } from '../../core/random/prng.ts';
import { DepartedParticipants } from './participant-registry.ts';
import { DeliveryRecord } from './selection.ts';

/** Departed participants kept at most, whatever their grace: bounds memory and the status under churn. */
export const MAX_DEPARTED_PARTICIPANTS = 1000;

export interface ParticipantRecord {
  readonly id: string;
  /** Whose delivery record it builds (selection.ts): its credential, or its id. */
  readonly deliveryKey: string;
  info: ClientInfo;
  connected: boolean;
  state: ParticipantState;
  roundsContributed: number;
  progress?: number;
  lastLatencyMs?: number;
  epsilon?: number;
  declined?: string;
  lastUpdateNorm?: number;
  /** Declined for good (its privacy budget is spent): never selected again, whatever else happens. */
  retired: boolean;
}

export interface ParticipantsOptions {
  readonly graceMs: number;
  readonly random: UniformSource;
  /** Creates participant ids; random by default. */
  readonly newId?: () => string;
  /** Called when a participant's record is forgotten (the server drops its rejoin secret). */
  readonly onForgotten?: (participantId: string) => void;
}

/**
 * Everyone the coordinator knows: who is connected, what each is doing, who
 * delivered when selected (selection.ts), and who left and is forgotten after
 * a grace period (participant-registry.ts).
 */
export class Participants {
  private readonly records = new Map<string, ParticipantRecord>();
  private readonly departed: DepartedParticipants;
  /** Who delivered when selected (selection.ts). */
  readonly deliveries = new DeliveryRecord();
  /** Contributors whose records were forgotten after they left (they stay in the round history). */
  private departedContributors = 0;
  private idCounter = 0;

  constructor(private readonly options: ParticipantsOptions) {
    this.departed = new DepartedParticipants(options.graceMs, MAX_DEPARTED_PARTICIPANTS);
  }

  get(id: string): ParticipantRecord | undefined {
    return this.records.get(id);
  }

  /**
   * A participant joined or rejoined: its known record (it keeps its id), or
   * a new one. `inOpenRound` says who is selected in the open round: one that
   * dropped out of it stays out of it.
   */
  join(
    info: ClientInfo,
    requestedId: string | undefined,
    credential: string | undefined,
    inOpenRound: (id: string) => boolean,
  ): ParticipantRecord {
    const existing = requestedId === undefined ? undefined : this.records.get(requestedId);
    if (existing) {
      this.departed.returned(existing.id);
      existing.info = info;
      existing.connected = true;
      if (!inOpenRound(existing.id)) existing.state = 'idle';
      return existing;
    }
    const id = this.options.newId?.() ?? this.makeId();
    const record: ParticipantRecord = {
      id,
      deliveryKey: credential ?? id,
      info,
      connected: true,
      state: 'idle',
      roundsContributed: 0,
      retired: false,
    };
    this.records.set(record.id, record);
    return record;
  }

  /** A participant's connection closed; its record stays for the grace period. */
  left(record: ParticipantRecord, at: number): void {
    record.connected = false;
    record.progress = undefined;
    this.departed.left(record.id, at);
  }

  /** Forgets the records of participants gone longer than the grace period; `inOpenRound` ones stay until it closes. */
  forgetDeparted(now: number, inOpenRound: (id: string) => boolean): void {
    const forgotten = this.departed.expire(now, (id) => inOpenRound(id) || this.records.get(id)?.connected === true);
    for (const id of forgotten) {
      const record = this.records.get(id);
      if (!record || record.connected) continue;
      this.records.delete(id);
      if (record.roundsContributed > 0) this.departedContributors++;
      if (record.deliveryKey === id) this.deliveries.forget(id);
      this.options.onForgotten?.(id);
    }
  }

  /** Who may be selected: connected, not retired, not out of the open round. */
  eligible(inOpenRound: (id: string) => boolean): ParticipantRecord[] {
    return [...this.records.values()].filter((p) => p.connected && !p.retired && p.state !== 'dropped' && !inOpenRound(p.id));
  }

  /** One row per known participant, for the status. */
  rows(): ParticipantStatus[] {
    const rows: ParticipantStatus[] = [];
    for (const p of this.records.values()) {
      rows.push({
        id: p.id,
        connected: p.connected,
        backend: p.info.backend,
        adapter: p.info.adapter,
        threads: p.info.threads,
        platform: p.info.platform,
        numExamples: p.info.numExamples,
        state: p.retired ? 'retired' : p.state,
        roundsContributed: p.roundsContributed,
        progress: p.progress,
        lastLatencyMs: p.lastLatencyMs,
        epsilon: p.epsilon,
        declined: p.declined,
        lastUpdateNorm: p.lastUpdateNorm,
      });
    }
    return rows;
  }

  /** How long a departed participant's record is kept (the leader keeps other nodes' delivery records as long: coordinator/cluster/remote-deliveries.ts). */
  get graceMs(): number {
    return this.options.graceMs;
  }

  get forgottenContributors(): number {
    return this.departedContributors;
  }

  private makeId(): string {
    this.idCounter++;
    const suffix = Math.floor(this.options.random.next() * 0x100000000)
      .toString(16)
      .padStart(8, '0');
    return `p${this.idCounter}-${suffix}`;
  }
}

/** A participant out of the open round (dropped, rejected): it waits for the next one. */
export function markOut(record: ParticipantRecord): void {
  record.state = 'dropped';
  record.progress = undefined;
}
