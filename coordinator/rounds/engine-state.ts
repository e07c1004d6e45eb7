import type { FederationControl, RoundPhase } from '../../core/protocol/status.ts';
import type { RoundCandidate } from './closing.ts';
import type { OpenRound } from './collection.ts';

/** What a paused-on-storage-failure federation still has to save before it may go on. */
export type UnsavedState =
  | { readonly kind: 'round'; readonly candidate: RoundCandidate }
  | { readonly kind: 'round-start'; readonly round: number };

/** Why no new round opens: the operator paused, or a save failed for good and must succeed first. */
export type Pause =
  | { readonly kind: 'operator' }
  /** `retrying`: the operator's resume is retrying the save (a second resume waits for it). */
  | { readonly kind: 'storage'; readonly unsaved: UnsavedState; readonly retrying: boolean };

/** What follows the open round: the next round, a pause, or the end of the federation (the operator's stop). */
export type AfterRound = { readonly kind: 'continue' } | { readonly kind: 'pause' } | { readonly kind: 'stop'; readonly reason: string };

/**
 * The round engine's state, the one place that says where the federation is.
 *
 *   awaiting-start --start--> idle --round number saved--> starting --> collecting --> closing --> idle ...
 *        any state --stop/abort/limit--> done
 *
 * - awaiting-start: the operator has not started it (`paused`: a pause came first).
 * - idle: between rounds, waiting for participants, or held by `pause`.
 * - starting: the next round's number is being saved (started.json); `paused` if a pause came meanwhile.
 * - collecting: the open round takes participants' input (its Collection).
 * - closing: the open round is aggregated, then evaluated, then saved; no input is taken.
 * - done: the federation finished, for `reason`.
 */
export type EngineState =
  | { readonly kind: 'awaiting-start'; readonly paused: boolean }
  | { readonly kind: 'idle'; readonly pause?: Pause }
  | { readonly kind: 'starting'; readonly round: number; readonly paused: boolean }
  | { readonly kind: 'collecting'; readonly round: OpenRound; readonly after: AfterRound }
  | { readonly kind: 'closing'; readonly round: OpenRound; readonly step: 'aggregating' | 'evaluating'; readonly after: AfterRound }
  | { readonly kind: 'done'; readonly reason: string };

export type EngineStateKind = EngineState['kind'];

/** The states each state may move to; anything else is a bug in the engine. */
function allowedFrom(kind: EngineStateKind): readonly EngineStateKind[] {
  switch (kind) {
    case 'awaiting-start':
      return ['awaiting-start', 'idle', 'done'];
    case 'idle':
      return ['idle', 'starting', 'collecting', 'done'];
    case 'starting':
      return ['starting', 'idle', 'collecting', 'done'];
    case 'collecting':
      return ['collecting', 'closing', 'done'];
    case 'closing':
      return ['closing', 'idle', 'done'];
    case 'done':
      return [];
    default:
      throw new Error(`unknown engine state ${kind satisfies never as string}`);
  }
}

/** Checks a transition; throws on one the state machine does not have. */
export function checkTransition(from: EngineState, to: EngineState): void {
  if (!allowedFrom(from.kind).includes(to.kind)) throw new Error(`round engine: no transition from ${from.kind} to ${to.kind}`);
}

/** The open round, in the states that have one. */
export function openRoundOf(state: EngineState): OpenRound | undefined {
  switch (state.kind) {
    case 'collecting':
    case 'closing':
      return state.round;
    case 'awaiting-start':
    case 'idle':
    case 'starting':
    case 'done':
      return undefined;
    default:
      throw new Error(`unknown engine state ${state satisfies never as string}`);
  }
}

/** The phase the status shows. */
export function phaseOf(state: EngineState): RoundPhase {
  switch (state.kind) {
    case 'awaiting-start':
    case 'idle':
    case 'starting':
      return 'waiting';
    case 'collecting':
      return 'training';
    case 'closing':
      return state.step;
    case 'done':
      return 'done';
    default:
      throw new Error(`unknown engine state ${state satisfies never as string}`);
  }
}

/** Whether the operator paused (or a storage failure did): no new round opens. */
export function isPaused(state: EngineState): boolean {
  switch (state.kind) {
    case 'awaiting-start':
    case 'starting':
      return state.paused;
    case 'idle':
      return state.pause !== undefined;
    case 'collecting':
    case 'closing':
      return state.after.kind === 'pause';
    case 'done':
      return false;
    default:
      throw new Error(`unknown engine state ${state satisfies never as string}`);
  }
}

/** The operator's view: running, paused, waiting for the start, or stopped (finished, or finishing the open round). */
export function controlOf(state: EngineState): FederationControl {
  switch (state.kind) {
    case 'done':
      return 'stopped';
    case 'awaiting-start':
      return 'awaiting-start';
    case 'collecting':
    case 'closing':
      if (state.after.kind === 'stop') return 'stopped';
      return state.after.kind === 'pause' ? 'paused' : 'running';
    case 'idle':
    case 'starting':
      return isPaused(state) ? 'paused' : 'running';
    default:
      throw new Error(`unknown engine state ${state satisfies never as string}`);
  }
}

/** The state with the operator's pause (true) or resume (false) applied; a stop in progress stays. */
export function withPause(state: EngineState, paused: boolean): EngineState {
  switch (state.kind) {
    case 'awaiting-start':
    case 'starting':
      return { ...state, paused };
    case 'idle':
      // A storage hold is lifted only by a successful save (the engine's retry).
      if (state.pause?.kind === 'storage') return state;
      return paused ? { kind: 'idle', pause: { kind: 'operator' } } : { kind: 'idle' };
    case 'collecting':
    case 'closing':
      if (state.after.kind === 'stop') return state;
      return { ...state, after: paused ? { kind: 'pause' } : { kind: 'continue' } };
    case 'done':
      return state;
    default:
      throw new Error(`unknown engine state ${state satisfies never as string}`);
  }
}

/** Why the operator's control action is refused in `state`, or undefined when it may go ahead. */
export function controlRefusal(state: EngineState, action: 'start' | 'pause' | 'resume' | 'stop'): string | undefined {
  const control = controlOf(state);
  if (control === 'stopped') return `the federation has stopped${state.kind === 'done' ? ` (${state.reason})` : ''}`;
  switch (action) {
    case 'start':
      return control === 'awaiting-start' ? undefined : `it has already started (${control})`;
    case 'pause':
      if (control === 'running') return undefined;
      return control === 'paused' ? 'it is already paused' : 'it has not started yet';
    case 'resume':
      if (control === 'paused') return undefined;
      return control === 'running' ? 'it is not paused' : 'it has not started yet (use start)';
    case 'stop':
      return undefined;
    default:
      throw new Error(`unknown control action ${action satisfies never as string}`);
  }
}
