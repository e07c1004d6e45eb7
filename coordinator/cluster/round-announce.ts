import type { RoundStartMessage } from '../../core/protocol/messages.ts';
import type { Clock } from '../rounds/clock.ts';
import type { GlobalModel } from '../rounds/engine-types.ts';
import type { ClusterEventServer, RoundAnnouncement, RoundReply } from './cluster-events.ts';
import type { ModelVersions } from './model-versions.ts';

/** A round announcement as a member heard it: with the round's deadline on the member's own clock. */
export interface HeardRound extends RoundAnnouncement {
  /** When this node stops collecting the round (ms since the Unix epoch by this node's clock): when it heard the announcement plus `remainingMs`. */
  readonly deadline: number;
}

/**
 * The leader's deadline as a member keeps it: the time the leader said was
 * left, counted from when the member heard it on its own clock. Only the
 * adapter's transit time (milliseconds) separates the two deadlines, however
 * far apart the nodes' clocks are; an absolute time would shift by their skew.
 */
export function heardRound(announcement: RoundAnnouncement, heardAt: number): HeardRound {
  return { ...announcement, deadline: heardAt + Math.max(0, announcement.remainingMs) };
}

/**
 * A member node's side of a round open: fetches the round's model from
 * Redis by version (once per version, ModelVersions), makes the frame its
 * participants get, and sends round:start to its own selected participants.
 * `modelOf` turns stored weights into the model as this node sends it (its
 * model encoding, fine-tuning); `send` reaches one participant on this node;
 * `clock` is the node's own (the engine's), on which the round's deadline is kept.
 */
export function answerRoundAnnouncements(options: {
  readonly io: ClusterEventServer;
  readonly nodeId: string;
  readonly clock: Pick<Clock, 'now'>;
  readonly versions: Pick<ModelVersions, 'get'>;
  readonly modelOf: (version: number, weights: Float32Array) => GlobalModel;
  readonly send: (participantId: string, message: RoundStartMessage) => boolean;
  /** Called once the round's model is here, before any round:start goes out: the node readies its collection of the round. */
  readonly opening?: (announcement: HeardRound, model: GlobalModel) => void;
}): void {
  const { io, nodeId, clock, versions, modelOf, send, opening } = options;
  let made: GlobalModel | undefined;
  io.on('cluster:round', (sent: RoundAnnouncement, ack: (reply: RoundReply) => void) => {
    // A leader of an older version sends a wall-clock `deadline` instead: counting on without a time left would give NaN deadlines.
    if (!Number.isFinite(sent.remainingMs) || sent.remainingMs < 0) {
      ack({
        node: nodeId,
        refused: `node ${nodeId} cannot start round ${sent.round}: the announcement has no valid remainingMs (a leader of another version?)`,
      });
      return;
    }
    // The deadline is fixed on this node's clock when the announcement arrives, before the model is fetched.
    const announcement = heardRound(sent, clock.now());
    const mine = announcement.selected[nodeId] ?? [];
    if (mine.length === 0) {
      ack({ node: nodeId, sent: 0 });
      return;
    }
    const refuse = (error: Error) =>
      ack({ node: nodeId, refused: `node ${nodeId} cannot start round ${announcement.round}: ${error.message}` });
    versions.get(announcement.modelVersion).then((weights) => {
      // A throw here (the model, the member's open, a send) must refuse the round, not end the process unanswered.
      try {
        // One frame per version, shared by every round:start of the node.
        if (made?.version !== announcement.modelVersion) made = modelOf(announcement.modelVersion, weights);
        opening?.(announcement, made);
        const message: RoundStartMessage = {
          round: announcement.round,
          model: { version: made.version, weights: made.frame, frozenHash: made.frozenHash },
          config: announcement.config,
          deadline: announcement.deadline,
        };
        let sent = 0;
        for (const id of mine) if (send(id, message)) sent++;
        ack({ node: nodeId, sent });
      } catch (error) {
        refuse(error as Error);
      }
    }, refuse);
  });
}

/**
 * The leader's side: announces the round to every member and collects their
 * answers (the adapter waits up to its requestsTimeout; a node that does not
 * answer is missing from the replies, and its selected participants are the
 * leader's to count as dropped).
 */
export function announceRound(io: ClusterEventServer, announcement: RoundAnnouncement, log: (line: string) => void): Promise<RoundReply[]> {
  return new Promise((resolve) => {
    io.serverSideEmit('cluster:round', announcement, (error: Error | null, replies: RoundReply[]) => {
      if (error) log(`cluster: round ${announcement.round}: ${error.message}`);
      resolve(replies);
    });
  });
}
