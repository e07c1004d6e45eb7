import { parseShard, type ShardSkew } from '../../core/data/dataset.ts';
import type { ParticipantEvent } from '../../core/participant/participant.ts';
import { BACKENDS, type BackendName, type PageToWorker, type WorkerToPage } from './worker-protocol.ts';
import { takeSecretParam } from '../secret-param.ts';

/** The participant page: reads the URL, starts the training worker and shows what it reports. */

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const STATUS_TEXT: Record<string, string> = {
  connecting: 'Connecting to the coordinator…',
  waiting: 'Waiting for a round',
  downloading: 'Receiving the global model',
  training: 'Training on local data',
  uploading: 'Sending the model update',
  done: 'Federation finished',
  disconnected: 'Disconnected, reconnecting…',
  failed: 'Stopped',
  left: 'Left the federation',
};

function setStatus(status: string, detail?: string): void {
  const el = $('status');
  el.dataset.status = status;
  el.textContent = (STATUS_TEXT[status] ?? status) + (detail ? ` (${detail})` : '');
}

function log(text: string): void {
  const item = document.createElement('li');
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  const list = $('log');
  list.prepend(item);
  while (list.children.length > 50) list.lastElementChild?.remove();
}

const percent = (x: number) => `${(x * 100).toFixed(1)}%`;

function readOptions(): PageToWorker {
  // First, so the token leaves the address bar even when another parameter is invalid.
  const token = takeSecretParam('token');
  const params = new URLSearchParams(location.search);
  const skewParam = params.get('skew') ?? 'iid';
  if (skewParam !== 'iid' && skewParam !== 'label') throw new Error(`?skew must be iid or label, got "${skewParam}"`);
  const shard = parseShard(params.get('shard') ?? '1/1', skewParam as ShardSkew);
  const backendParam = params.get('backend');
  if (backendParam !== null && !(BACKENDS as readonly string[]).includes(backendParam)) {
    throw new Error(`?backend must be one of ${BACKENDS.join(', ')}, got "${backendParam}"`);
  }
  const budgetParam = params.get('epsilon-budget');
  const epsilonBudget = budgetParam === null ? undefined : Number(budgetParam);
  if (epsilonBudget !== undefined && !(epsilonBudget > 0)) throw new Error(`?epsilon-budget must be a positive number, got "${budgetParam}"`);
  return {
    type: 'start',
    url: location.origin,
    shard,
    backend: (backendParam as BackendName | null) ?? undefined,
    platform: navigator.userAgent,
    epsilonBudget,
    token,
  };
}

let contributed = 0;
let left = false;

function onParticipantEvent(event: ParticipantEvent): void {
  switch (event.type) {
    case 'status':
      if (left) break;
      setStatus(event.status, event.detail);
      if (event.status === 'waiting') $('epoch').textContent = 'Waiting to be selected for a round.';
      if (event.status === 'downloading') $<HTMLProgressElement>('progress').value = 0;
      break;
    case 'joined':
      $('participant-id').textContent = event.participantId;
      log(`joined ${event.task.name} (${event.task.model.architecture}, ${event.task.paramCount.toLocaleString()} parameters) at model version ${event.modelVersion}`);
      break;
    case 'progress':
      $('round').textContent = String(event.round);
      $<HTMLProgressElement>('progress').value = event.fraction;
      $('epoch').textContent = `Epoch ${Math.min(event.epoch + 1, event.epochs)} of ${event.epochs}, ${percent(event.fraction)} of this round`;
      break;
    case 'uploaded': {
      contributed++;
      const count = $('contributed');
      count.textContent = String(contributed);
      count.dataset.rounds = `${count.dataset.rounds ?? ''} ${event.round}`.trim();
      $('local-loss').textContent = event.metrics.loss.toFixed(4);
      $('local-accuracy').textContent = percent(event.metrics.accuracy);
      const privacy = [event.clipped ? 'clipped' : '', event.noised ? 'noised' : ''].filter(Boolean).join(' and ');
      $('privacy-note').textContent = `Last update: ${event.bytes.toLocaleString()} bytes${privacy ? `, ${privacy}` : ''}${event.masked ? ', masked (only the sum can be decoded)' : ''}.`;
      log(`round ${event.round}: sent update (${event.bytes.toLocaleString()} bytes), local accuracy ${percent(event.metrics.accuracy)}`);
      break;
    }
    case 'secagg':
      showSecAgg(event);
      break;
    case 'rejected':
      log(`round ${event.round}: update rejected: ${event.code}: ${event.message}`);
      break;
    case 'privacy': {
      const el = $('epsilon');
      const budget = event.budget === undefined ? 'no budget set' : `of a budget of ${event.budget}`;
      el.textContent = `ε = ${event.epsilon.toFixed(3)} spent (δ = ${event.delta}), ${budget}${event.exhausted ? ': budget spent, this device no longer contributes' : ''}`;
      // A history of distinct values (one per charged update, and the one loaded at start), for tests and people.
      if (event.epsilon > 0 && el.dataset.epsilon !== String(event.epsilon)) el.dataset.history = `${el.dataset.history ?? ''} ${event.epsilon}`.trim();
      el.dataset.epsilon = String(event.epsilon);
      el.dataset.exhausted = String(event.exhausted);
      if (event.budget !== undefined) $<HTMLProgressElement>('epsilon-progress').value = Math.min(1, event.epsilon / event.budget);
      break;
    }
    case 'declined':
      log(`round ${event.round}: declined: ${event.reason}`);
      break;
    case 'round-end': {
      const m = event.message;
      $('round').textContent = String(m.round);
      if (m.metrics) $('global-accuracy').textContent = percent(m.metrics.accuracy);
      log(`round ${m.round} ${m.outcome}${m.metrics ? `: global accuracy ${percent(m.metrics.accuracy)}` : ''}${m.reason ? ` (${m.reason})` : ''}`);
      break;
    }
    case 'done':
      log(`federation finished: ${event.message.reason}`);
      break;
    case 'error':
      log(`error: ${event.message}`);
      break;
  }
}

const SECAGG_STEP_TEXT: Record<string, string> = {
  advertised: 'Step 1 of 4: public keys advertised',
  shared: 'Step 2 of 4: encrypted key shares sent to the other participants',
  masked: 'Step 3 of 4: masked update accepted by the coordinator',
  unmasked: 'Step 4 of 4: shares sent so the coordinator can remove the masks of the sum',
};

function showSecAgg(event: Extract<ParticipantEvent, { type: 'secagg' }>): void {
  const { round, step, index, participants: n } = event;
  const el = $('secagg');
  el.dataset.step = step;
  el.dataset.round = String(round);
  el.dataset.index = String(index);
  const k = event.neighbours === undefined || event.neighbours === 'all' ? n - 1 : Math.min(event.neighbours, n - 1);
  const graph = k < n - 1 ? `SecAgg+, ${k} of ${n - 1} neighbours` : `SecAgg, all ${n} participants`;
  const threshold = event.threshold === undefined ? '' : `, threshold ${event.threshold}`;
  el.textContent = `Round ${round}: update masked with secure aggregation (${graph}${threshold}): the coordinator learns only the sum.`;
  $('secagg-step').textContent = SECAGG_STEP_TEXT[step] ?? step;
  if (step === 'masked') el.dataset.maskedRounds = `${el.dataset.maskedRounds ?? ''} ${round}`.trim();
  log(`round ${round}: secure aggregation ${step} (participant ${index} of ${n})`);
}

function onWorkerMessage(message: WorkerToPage): void {
  switch (message.type) {
    case 'prg': {
      const el = $('prg-check');
      el.dataset.prg = message.result;
      el.textContent = message.result === 'ok' ? 'passed (same bytes as the coordinator)' : `FAILED: ${message.result}`;
      if (message.result !== 'ok') log(`PRG self-test failed: ${message.result}`);
      break;
    }
    case 'backend': {
      const badge = $('backend');
      badge.textContent = message.backend;
      badge.dataset.backend = message.backend;
      $('adapter').textContent = message.adapter ?? '';
      for (const reason of message.tried) log(`backend skipped: ${reason}`);
      log(`training on ${message.backend}${message.adapter ? ` (${message.adapter})` : ''}`);
      break;
    }
    case 'dp':
      $('dp-section').hidden = false;
      $('dp-info').textContent =
        `DP-SGD: each example's gradient clipped to ${message.clipNorm}, noise multiplier ${message.noiseMultiplier}, ` +
        `expected batch ${message.expectedBatchSize} (Poisson sampling). Per-example gradients: ` +
        (message.path === 'fast' ? 'vectorised.' : 'one backward pass per example (this model has layers the fast path does not cover: slower).');
      $('privacy-note').textContent = 'Each update is trained with DP-SGD; local loss and accuracy stay on this device.';
      break;
    case 'data':
      $('data').textContent = `${message.numExamples.toLocaleString()} examples, labels ${message.labels.map((n, label) => (n > 0 ? label : null)).filter((l) => l !== null).join(' ')}`;
      break;
    case 'memory': {
      const el = $('tensors');
      el.textContent = `${message.numTensors} tensors, ${(message.numBytes / 1e6).toFixed(1)} MB (after round ${message.round})`;
      el.dataset.round = String(message.round);
      el.dataset.tensors = String(message.numTensors);
      // "round:count" pairs, so a test can check the count stays flat across rounds.
      el.dataset.history = `${el.dataset.history ?? ''} ${message.round}:${message.numTensors}`.trim();
      break;
    }
    case 'participant':
      onParticipantEvent(message.event);
      break;
    case 'fatal':
      setStatus('failed', message.message);
      log(`fatal: ${message.message}`);
      break;
  }
}

function main(): void {
  let options: PageToWorker;
  try {
    options = readOptions();
  } catch (error) {
    setStatus('failed', (error as Error).message);
    return;
  }
  const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'participant-training' });
  worker.addEventListener('message', (event: MessageEvent<WorkerToPage>) => onWorkerMessage(event.data));
  worker.addEventListener('error', (event) => {
    setStatus('failed', event.message || 'the training worker crashed');
  });
  worker.postMessage(options);
  $('leave').addEventListener('click', () => {
    worker.postMessage({ type: 'leave' } satisfies PageToWorker);
    left = true;
    setStatus('left');
    $<HTMLButtonElement>('leave').disabled = true;
  });
}

main();
