import { shardIndices, subset } from '../../core/data/dataset.ts';
import { Participant, type ParticipantEvent } from '../../core/participant/participant.ts';
import type { ModelSpec } from '../../core/protocol/messages.ts';
import { LocalTrainer } from '../../core/training/local-trainer.ts';
import type { DemoData } from '../../coordinator/task/demo-data.ts';

export interface NodeParticipant {
  readonly participant: Participant;
  readonly trainer: LocalTrainer;
  readonly events: ParticipantEvent[];
}

/** Real participants in this Node process: the shared participant client and trainer on the tfjs wasm backend. */
export function startNodeParticipants(url: string, demo: DemoData, spec: ModelSpec, count: number, totalShards = count): NodeParticipant[] {
  const out: NodeParticipant[] = [];
  for (let k = 0; k < count; k++) {
    const data = subset(demo.train, shardIndices(demo.train.labels, { index: k, count: totalShards, skew: 'iid' }));
    const trainer = new LocalTrainer(spec, data);
    const events: ParticipantEvent[] = [];
    const participant = new Participant({
      url,
      client: { backend: 'wasm', platform: `node ${process.version}` },
      trainer,
      reconnectionDelayMs: 200,
      onEvent: (event) => events.push(event),
    });
    participant.start();
    out.push({ participant, trainer, events });
  }
  return out;
}

export function stopNodeParticipants(participants: readonly NodeParticipant[]): void {
  for (const p of participants) {
    p.participant.stop();
    p.trainer.dispose();
  }
}
