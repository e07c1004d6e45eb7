import type { ParticipantEvent } from '../../core/participant/participant.ts';

/**
 * The terminal progress of a Node participant. On a terminal one line is
 * rewritten in place (status, round, training progress, ε); otherwise (a log
 * file, a test) each change of status and each round's outcome is one line,
 * and the per-batch progress is left out.
 */
export class ProgressLine {
  private status = 'connecting';
  private round = 0;
  private percent: number | undefined;
  private epsilon = '';
  private lastAccuracy = '';
  private lastLine = '';

  constructor(
    private readonly write: (text: string) => void,
    private readonly interactive: boolean,
  ) {}

  /** Shows the event: outcomes (joined, sent, round results, errors) as lines of their own, the rest in the progress line. */
  onEvent(event: ParticipantEvent): void {
    const outcome = this.update(event);
    if (outcome === undefined) this.show();
    else this.keep(outcome);
  }

  /** Takes the event into the progress state; returns its outcome line, if it is an outcome. */
  private update(event: ParticipantEvent): string | undefined {
    switch (event.type) {
      case 'status':
        this.status = event.detail && event.status !== 'connecting' ? `${event.status} (${event.detail})` : event.status;
        this.percent = undefined;
        return undefined;
      case 'joined':
        this.round = event.round;
        return `joined task "${event.task.name}" as ${event.participantId} (model version ${event.modelVersion})`;
      case 'progress':
        this.round = event.round;
        this.percent = Math.round(event.fraction * 100);
        return undefined;
      case 'uploaded':
        return (
          `round ${event.round}: sent ${formatBytes(event.bytes)}${event.encoding && event.encoding !== 'float32' ? ` as ${event.encoding}` : ''} (local loss ${event.metrics.loss.toFixed(3)}, accuracy ${event.metrics.accuracy.toFixed(3)}` +
          `${event.clipped ? ', clipped' : ''}${event.noised ? ', noised' : ''}${event.masked ? ', masked' : ''})`
        );
      case 'rejected':
        return `round ${event.round}: the coordinator rejected the update: ${event.code}: ${event.message}`;
      case 'secagg':
        return undefined;
      case 'privacy':
        this.epsilon = `ε ${event.epsilon.toFixed(3)}${event.budget === undefined ? '' : ` of ${event.budget}`} (δ ${event.delta})`;
        if (event.exhausted) return `privacy budget spent: ${this.epsilon}`;
        return undefined;
      case 'client-privacy':
        this.epsilon = `client-level ε ${event.epsilon.toFixed(3)}${event.budget === undefined ? '' : ` of ${event.budget}`} (δ ${event.delta})`;
        if (event.exhausted) return `client-level privacy budget spent: ${this.epsilon}`;
        return undefined;
      case 'declined':
        return `round ${event.round}: declined: ${event.reason}`;
      case 'frozen-weights':
        return event.source.kind === 'cache'
          ? `frozen weights ${event.hash.slice(0, 12)}… from the state folder (not downloaded)`
          : `frozen weights ${event.hash.slice(0, 12)}… downloaded once (${formatBytes(event.source.bytes)}); rounds send only the trainable weights`;
      case 'round-end': {
        const m = event.message;
        if (m.metrics) this.lastAccuracy = `global accuracy ${m.metrics.accuracy.toFixed(3)}`;
        return `round ${m.round} ${m.outcome}${m.reason ? ` (${m.reason})` : ''}${m.metrics ? `: test accuracy ${m.metrics.accuracy.toFixed(3)}, loss ${m.metrics.loss.toFixed(3)}` : ''}`;
      }
      case 'done':
        return `federation done after round ${event.message.round}: ${event.message.reason}${event.message.metrics ? `, test accuracy ${event.message.metrics.accuracy.toFixed(3)}` : ''}`;
      case 'error':
        return `error: ${event.message}`;
      default: {
        const unknown: never = event;
        throw new Error(`unknown participant event ${JSON.stringify(unknown)}`);
      }
    }
  }

  private current(): string {
    const parts = [
      this.round > 0 ? `round ${this.round}` : '',
      this.percent === undefined ? this.status : `${this.status} ${this.percent}%`,
      this.epsilon,
      this.lastAccuracy,
    ];
    return parts.filter((p) => p !== '').join(' · ');
  }

  private show(): void {
    const line = this.current();
    if (line === this.lastLine) return;
    this.lastLine = line;
    if (this.interactive) this.write(`\r\x1b[K${line}`);
    else if (this.percent === undefined) this.write(`${line}\n`);
  }

  private keep(text: string): void {
    this.write(this.interactive ? `\r\x1b[K${text}\n` : `${text}\n`);
    this.lastLine = '';
    this.show();
  }
}

function formatBytes(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}
