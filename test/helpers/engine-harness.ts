import { FedAvg } from '../../core/aggregation/fedavg.ts';
import type { Strategy } from '../../core/aggregation/strategy.ts';
import type {
  EvalMetrics,
  FederationDoneMessage,
  RoundEndMessage,
  RoundStartMessage,
  UpdateMessage,
} from '../../core/protocol/messages.ts';
import type { FederationStatus, RoundRecord, RoundSettings } from '../../core/protocol/status.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { encodeFrame, FrameKind } from '../../core/wire/frame.ts';
import { ManualClock } from '../../coordinator/rounds/clock.ts';
import type { RemoteRounds } from '../../coordinator/rounds/remote-rounds.ts';
import { RoundEngine, type RoundTransport } from '../../coordinator/rounds/round-engine.ts';

/** A round engine on a manual clock, with a transport that records what it was asked to send. */
export class EngineHarness implements RoundTransport {
  readonly clock = new ManualClock();
  readonly starts: { participantId: string; message: RoundStartMessage }[] = [];
  readonly ends: RoundEndMessage[] = [];
  readonly done: FederationDoneMessage[] = [];
  /** 'checkpoint N', 'end N', 'done': the order things happened in. */
  readonly log: string[] = [];
  /** The history the last checkpoint was given. */
  checkpointHistory: readonly RoundRecord[] = [];
  /** Runs inside every round save and round-start save: a throw is a storage failure. */
  saveFault: ((what: 'round' | 'start') => Promise<void> | void) | undefined;
  /** The status as it was while each round save ran. */
  readonly statusDuringSave: FederationStatus[] = [];
  /** Save failures the engine reported. */
  readonly errors: string[] = [];
  readonly engine: RoundEngine;
  private nextId = 0;

  constructor(
    settings: Partial<RoundSettings> = {},
    readonly dim = 4,
    strategy: Strategy = new FedAvg(),
    /** A cluster leader's hook for participants of other nodes. */
    remoteRounds?: RemoteRounds,
  ) {
    this.engine = new RoundEngine({
      settings: {
        rounds: 10,
        minClients: 2,
        clientsPerRound: 3,
        minUpdates: 1,
        roundTimeoutMs: 10_000,
        fit: { epochs: 1, batchSize: 8, learningRate: 0.1 },
        ...settings,
      },
      strategy,
      clock: this.clock,
      transport: this,
      // Accuracy is read off the first weight, so tests can steer it through their updates.
      evaluator: { evaluate: async (w: Float32Array): Promise<EvalMetrics> => ({ accuracy: w[0]!, loss: 1 - w[0]! }) },
      initialWeights: new Float32Array(dim),
      random: new SeededRandom(3),
      task: { name: 'test', architecture: 'mlp', paramCount: dim },
      newId: () => `p${++this.nextId}`,
      onRoundCompleted: async (record: RoundRecord, _model, history) => {
        this.statusDuringSave.push(this.engine.status());
        await this.saveFault?.('round');
        this.log.push(`checkpoint ${record.round}`);
        this.checkpointHistory = structuredClone(history);
      },
      onRoundStarting: () => this.saveFault?.('start'),
      saveRetry: { attempts: 3, firstDelayMs: 100, maxDelayMs: 150 },
      logError: (line) => this.errors.push(line),
      remoteRounds,
    });
  }

  sendRoundStart(participantId: string, message: RoundStartMessage): void {
    this.starts.push({ participantId, message });
  }
  broadcastRoundEnd(message: RoundEndMessage): void {
    this.ends.push(message);
    this.log.push(`end ${message.round}`);
  }
  broadcastDone(message: FederationDoneMessage): void {
    this.done.push(message);
    this.log.push('done');
  }
  statusChanged(): void {}

  join(numExamples = 10): string {
    return this.engine.join({ backend: 'cpu', numExamples });
  }

  /** Lets deferred work (the engine's queued events, the evaluation, saves) run; the clock does not move. */
  settle(): Promise<void> {
    return this.engine.idle();
  }

  selectedIn(round: number): string[] {
    return this.starts.filter((s) => s.message.round === round).map((s) => s.participantId);
  }

  update(round: number, values: number[], overrides: Partial<UpdateMessage> = {}): UpdateMessage {
    return {
      round,
      baseVersion: this.starts.find((s) => s.message.round === round)?.message.model.version ?? 0,
      numExamples: 10,
      metrics: { loss: 0.5, accuracy: 0.5 },
      trainMs: 1,
      update: new Uint8Array(encodeFrame(FrameKind.Update, Float32Array.from(values))),
      ...overrides,
    };
  }
}
