import { parseShard, type ShardSkew, type ShardSpec } from '../../core/data/dataset.ts';
import type { ParticipantEvent } from '../../core/participant/participant.ts';
import type { TaskSummary } from '../../core/protocol/messages.ts';
import { ACCOUNTANT_KINDS, type AccountantKind, isAccountantKind } from '../../core/privacy/epsilon.ts';
import { BACKENDS, jobForTask, type BackendName, type PageToWorker, type StartData, type WorkerToPage } from './worker-protocol.ts';
import { takeSecretParam } from '../secret-param.ts';
import { DataPanel, type PreparedData } from './data-panel.ts';
import { loadDemoCsv } from './sources/csv.ts';
import { packedBytes } from '../../core/secagg/word-packing.ts';
import { frameBytes } from '../../core/compression/update-codec.ts';
import { compressedText, formatBytes, SENT_ALSO, sentStatement, updateBytes, updateValues } from './task-text.ts';
import { $, errorMessage } from './dom.ts';

/**
 * The participant page: reads the URL and the task, lets the user pick the
 * data (or takes the demo shard), starts the training worker and shows what
 * it reports. Files are read here and only prepared examples go to the worker.
 */

const STATUS_TEXT: Record<string, string> = {
  connecting: 'Connecting to the coordinator…',
  'choose-data': 'Choose the data to train on',
  'loading-data': 'Reading the training data…',
  waiting: 'Connected: waiting to be selected for a round',
  downloading: 'Receiving the global model',
  training: 'Training on this device',
  uploading: 'Sending the model update',
  done: 'Federation finished: thank you',
  disconnected: 'Disconnected: reconnecting…',
  failed: 'Stopped',
  left: 'You left the federation',
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

/** A problem the user should see without opening the log. */
function showError(text: string): void {
  const el = $('error');
  el.textContent = text;
  el.hidden = false;
  log(text);
}

const percent = (x: number) => `${(x * 100).toFixed(1)}%`;

interface PageOptions {
  readonly shard: ShardSpec;
  readonly backend?: BackendName;
  readonly epsilonBudget?: number;
  /** `?max-delta=`: the person's largest acceptable δ (default 1e-5). */
  readonly maxDelta?: number;
  /** `?accountant=`: how this device's ledgers turn their history into ε (default: the task's, else auto). */
  readonly accountant?: AccountantKind;
  readonly token?: string;
  /** `?data=own`: the user's files even when the task has demo data. */
  readonly ownData: boolean;
}

function readOptions(): PageOptions {
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
  if (epsilonBudget !== undefined && !(epsilonBudget > 0))
    throw new Error(`?epsilon-budget must be a positive number, got "${budgetParam}"`);
  const maxDeltaParam = params.get('max-delta');
  const maxDelta = maxDeltaParam === null ? undefined : Number(maxDeltaParam);
  if (maxDelta !== undefined && !(maxDelta > 0 && maxDelta < 1))
    throw new Error(`?max-delta must be a number in (0, 1), got "${maxDeltaParam}"`);
  const accountantParam = params.get('accountant');
  if (accountantParam !== null && !isAccountantKind(accountantParam))
    throw new Error(`?accountant must be one of ${ACCOUNTANT_KINDS.join(', ')}, got "${accountantParam}"`);
  const dataParam = params.get('data');
  if (dataParam !== null && dataParam !== 'own' && dataParam !== 'demo') throw new Error(`?data must be own or demo, got "${dataParam}"`);
  return {
    shard,
    backend: (backendParam as BackendName | null) ?? undefined,
    epsilonBudget,
    maxDelta,
    accountant: accountantParam ?? undefined,
    token,
    ownData: dataParam === 'own',
  };
}

/** This page's address with `data` set (or removed), every other parameter kept as typed. */
function urlWithData(value: 'own' | undefined): string {
  const kept = location.search
    .slice(1)
    .split('&')
    .filter((part) => part !== '' && part.split('=')[0] !== 'data');
  if (value) kept.push(`data=${value}`);
  return `${location.pathname}${kept.length > 0 ? `?${kept.join('&')}` : ''}`;
}

let task: TaskSummary | undefined;
let contributed = 0;
let left = false;
let failed = false;
let panel: DataPanel | undefined;

function resetProgress(text: string): void {
  for (const id of ['epoch-progress', 'batch-progress']) $<HTMLProgressElement>(id).value = 0;
  $('epoch-text').textContent = '–';
  $('batch-text').textContent = '–';
  $('progress-text').textContent = text;
}

function showProgress(event: Extract<ParticipantEvent, { type: 'progress' }>): void {
  $('round').textContent = String(event.round);
  const epochs = $<HTMLProgressElement>('epoch-progress');
  epochs.max = event.epochs;
  epochs.value = event.epoch;
  $('epoch-text').textContent = `${event.epoch} of ${event.epochs} done`;
  const batches = $<HTMLProgressElement>('batch-progress');
  batches.max = Math.max(1, event.batches);
  batches.value = event.batch;
  $('batch-text').textContent = `${event.batch.toLocaleString()} of ${event.batches.toLocaleString()}`;
  $('progress-text').textContent = `Round ${event.round}: ${percent(event.fraction)} of this round's local training done.`;
}

function showUploaded(event: Extract<ParticipantEvent, { type: 'uploaded' }>): void {
  contributed++;
  const count = $('contributed');
  count.textContent = String(contributed);
  count.dataset.rounds = `${count.dataset.rounds ?? ''} ${event.round}`.trim();
  $('local-loss').textContent = event.metrics.loss.toFixed(4);
  $('local-accuracy').textContent = percent(event.metrics.accuracy);
  const applied = [event.clipped ? 'clipped' : '', event.noised ? 'noised' : '', event.masked ? 'masked' : ''].filter(Boolean);
  const sent = $('bytes-sent');
  sent.dataset.bytes = String(event.bytes);
  sent.dataset.round = String(event.round);
  sent.dataset.encoding = event.encoding ?? '';
  sent.textContent = `${formatBytes(event.bytes)} in round ${event.round}${compressedText(event.bytes, event.encoding, event.float32Bytes)}${applied.length > 0 ? `, ${applied.join(', ')}` : ''}`;
  // Confirms the statement made before the first round, with the real size.
  const expected = task
    ? event.masked
      ? packedBytes(event.vectorLength ?? updateValues(task), event.wordBits ?? 32)
      : frameBytes(event.encoding ?? 'float32', updateValues(task))
    : undefined;
  $('privacy-note').textContent =
    expected === undefined
      ? ''
      : event.bytes === expected
        ? 'As stated above.'
        : `Expected ${expected.toLocaleString()} bytes: please report this.`;
  if (event.masked) $('privacy-note').textContent += ' Masked: only the sum of all updates can be decoded.';
  log(`round ${event.round}: sent update (${event.bytes.toLocaleString()} bytes), local accuracy ${percent(event.metrics.accuracy)}`);
}

function showFrozenWeights(event: Extract<ParticipantEvent, { type: 'frozen-weights' }>): void {
  const el = $('frozen-weights');
  el.hidden = false;
  el.dataset.source = event.source.kind;
  el.textContent =
    event.source.kind === 'cache'
      ? "The frozen part of the model came from this browser's cache: not downloaded again."
      : `The frozen part of the model was downloaded once (${formatBytes(event.source.bytes)}) and kept in this browser's cache.`;
  log(el.textContent);
}

function onParticipantEvent(event: ParticipantEvent): void {
  switch (event.type) {
    case 'status':
      if (left) break;
      setStatus(event.status, event.detail);
      if (event.status === 'waiting') $('progress-text').textContent = 'Waiting to be selected for a round.';
      if (event.status === 'downloading') resetProgress('Selected for this round: receiving the global model.');
      break;
    case 'joined':
      $('participant-id').textContent = event.participantId;
      $('error').hidden = true;
      log(
        `joined ${event.task.name} (${event.task.model.architecture}, ${event.task.paramCount.toLocaleString()} parameters) at model version ${event.modelVersion}`,
      );
      break;
    case 'progress':
      showProgress(event);
      break;
    case 'uploaded':
      showUploaded(event);
      break;
    case 'secagg':
      showSecAgg(event);
      break;
    case 'rejected':
      showError(`Round ${event.round}: the coordinator rejected this update (${event.code}: ${event.message}).`);
      break;
    case 'privacy': {
      const el = $('epsilon');
      const budget = event.budget === undefined ? 'no budget set' : `of a budget of ${event.budget}`;
      const accountant = event.accountant === undefined ? '' : `, ${event.accountant.toUpperCase()} accountant`;
      el.textContent = `ε = ${event.epsilon.toFixed(3)} spent (δ = ${event.delta}${accountant}), ${budget}${event.exhausted ? ': budget spent, this device no longer contributes' : ''}`;
      el.dataset.accountant = event.accountant ?? '';
      // A history of distinct values (one per charged update, and the one loaded at start), for tests and people.
      if (event.epsilon > 0 && el.dataset.epsilon !== String(event.epsilon))
        el.dataset.history = `${el.dataset.history ?? ''} ${event.epsilon}`.trim();
      el.dataset.epsilon = String(event.epsilon);
      el.dataset.exhausted = String(event.exhausted);
      if (event.budget !== undefined) $<HTMLProgressElement>('epsilon-progress').value = Math.min(1, event.epsilon / event.budget);
      break;
    }
    case 'client-privacy':
      $('privacy-note').dataset.clientEpsilon = String(event.epsilon);
      log(
        `client-level DP: this device's own ledger reads ε = ${event.epsilon.toFixed(3)} (δ = ${event.delta}${event.accountant === undefined ? '' : `, ${event.accountant.toUpperCase()} accountant`}) of a budget of ${event.budget}${event.exhausted ? ': spent, this device no longer contributes' : ''}`,
      );
      break;
    case 'declined':
      log(`round ${event.round}: declined: ${event.reason}`);
      break;
    case 'frozen-weights':
      showFrozenWeights(event);
      break;
    case 'round-end': {
      const m = event.message;
      $('round').textContent = String(m.round);
      if (m.metrics) $('global-accuracy').textContent = percent(m.metrics.accuracy);
      log(
        `round ${m.round} ${m.outcome}${m.metrics ? `: global accuracy ${percent(m.metrics.accuracy)}` : ''}${m.reason ? ` (${m.reason})` : ''}`,
      );
      break;
    }
    case 'done':
      log(`federation finished: ${event.message.reason}`);
      $<HTMLButtonElement>('leave').disabled = true;
      break;
    case 'error':
      showError(event.message);
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
  el.textContent = `Round ${round}: update masked with secure aggregation (${graph}${threshold}): a coordinator following the protocol learns only the sum.`;
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
      const { selected } = message;
      const badge = $('backend');
      badge.textContent = selected.backend;
      badge.dataset.backend = selected.backend;
      $('adapter').textContent = selected.adapter ?? '';
      const why = $('backend-choice');
      why.textContent = message.text;
      why.dataset.how = selected.how;
      why.dataset.threads = selected.threads === undefined ? '' : String(selected.threads);
      why.dataset.isolated = String(message.isolated);
      why.dataset.chooseMs = String(Math.round(selected.chooseMs));
      for (const m of selected.measurements) {
        const rate = m.examplesPerSecond === undefined ? '' : `${Math.round(m.examplesPerSecond)} examples/s`;
        log(
          `backend ${m.backend}${m.adapter ? ` (${m.adapter})` : ''}: ${[rate, m.note, m.ms === undefined ? '' : `${Math.round(m.ms)} ms`].filter(Boolean).join(', ')}`,
        );
      }
      log(`training on ${message.text}`);
      break;
    }
    case 'dp':
      $('dp-section').hidden = false;
      $('dp-info').textContent =
        `DP-SGD: each example's gradient clipped to ${message.clipNorm}, noise multiplier ${message.noiseMultiplier}, ` +
        `expected batch ${message.expectedBatchSize} (Poisson sampling). Per-example gradients: ` +
        (message.path === 'fast'
          ? 'vectorised.'
          : 'one backward pass per example (this model has layers the fast path does not cover: slower).') +
        (message.ledger.scope === 'own-data'
          ? ' ε counts everything you train on from your own files in this browser, in every task, whatever file it came from: a re-exported or edited file may hold the same people.'
          : ' ε counts these exact examples (by their content) in this browser, whatever the task is called.') +
        ` It is stated at this device's δ = ${message.ledger.delta} and stops at ε = ${message.ledger.epsilonBudget} (lower it below).`;
      break;
    case 'data': {
      const names = task?.classes ?? [];
      const present = message.labels.map((n, label) => (n > 0 ? (names[label] ?? String(label)) : null)).filter((l) => l !== null);
      $('data').textContent = `${message.description}: ${message.numExamples.toLocaleString()} examples, classes ${present.join(' ')}`;
      break;
    }
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
      fail(message.message);
      break;
  }
}

function fail(message: string): void {
  failed = true;
  setStatus('failed', message);
  showError(`Stopped: ${message}`);
  // No data can be joined with any more: the page has stopped.
  panel?.lock();
}

async function fetchTask(): Promise<TaskSummary> {
  let response: Response;
  try {
    response = await fetch('/api/task', { cache: 'no-store' });
  } catch (error) {
    throw new Error(`cannot reach the coordinator: ${errorMessage(error)}`);
  }
  if (!response.ok) throw new Error(`the coordinator answered HTTP ${response.status} for /api/task`);
  return (await response.json()) as TaskSummary;
}

function showTask(t: TaskSummary): void {
  $('task').textContent = `${t.name}: ${t.description}`;
  const sent = $('sent');
  sent.textContent = sentStatement(t);
  sent.dataset.bytesPerRound = String(updateBytes(t));
  $('sent-also').textContent = SENT_ALSO;
}

/** The demo shard, as the worker fetches it (encoded datasets) or as the page prepares it (CSV, like a user's file). */
async function demoData(t: TaskSummary, shard: ShardSpec): Promise<StartData> {
  const label = `demo shard ${shard.index + 1}/${shard.count}`;
  const source = $('data-source');
  source.dataset.source = 'demo';
  source.textContent = `Using the ${label}${shard.skew === 'label' ? ' (label-skewed)' : ''}: public example data from the coordinator, kept only on this device.`;
  const link = $<HTMLAnchorElement>('data-switch-link');
  link.href = urlWithData('own');
  link.textContent = 'Use my own data instead';
  $('data-switch').hidden = false;
  if (t.demoData!.format === 'dataset') return { kind: 'demo', shard };
  setStatus('loading-data', 'the demo CSV');
  const prepared = await loadDemoCsv(t, shard);
  return { kind: 'local', dataset: prepared.dataset, description: label, own: false };
}

async function ownData(t: TaskSummary, panel: DataPanel): Promise<StartData> {
  const source = $('data-source');
  source.dataset.source = 'own';
  source.textContent = 'Using your own data: choose it below. It stays on this device.';
  if (t.demoData) {
    const link = $<HTMLAnchorElement>('data-switch-link');
    link.href = urlWithData(undefined);
    link.textContent = 'Use the demo data instead';
    $('data-switch').hidden = false;
  }
  setStatus('choose-data');
  const chosen: PreparedData = await panel.choose();
  source.textContent = `Using your own data: ${chosen.description}, ${chosen.dataset.count.toLocaleString()} examples. Your files are not uploaded: only the model updates trained on them are.`;
  return { kind: 'local', dataset: chosen.dataset, description: chosen.description, own: true };
}

/** The buffers of a dataset, to transfer rather than copy to the worker (copied first if they are views into a larger buffer). */
function transferable(data: StartData): { data: StartData; transfer: ArrayBuffer[] } {
  if (data.kind !== 'local') return { data, transfer: [] };
  const own = <T extends Uint8Array | Float32Array>(a: T): T =>
    a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : (a.slice() as T);
  const dataset = { ...data.dataset, values: own(data.dataset.values), labels: own(data.dataset.labels) };
  return { data: { ...data, dataset }, transfer: [dataset.values.buffer as ArrayBuffer, dataset.labels.buffer as ArrayBuffer] };
}

/** Chromium's structured user agent, where the browser offers it (not in lib.dom yet). */
interface UserAgentData {
  readonly brands: readonly { readonly brand: string; readonly version: string }[];
  readonly mobile: boolean;
  readonly platform: string;
}

/**
 * What the dashboard shows as this device (the protocol's `platform`, at most
 * 256 characters): browser, OS, phone or not, cores, memory and screen, as
 * the browser reports them; the raw user agent where it reports nothing else.
 */
function deviceDescription(): string {
  const nav = navigator as Navigator & { readonly userAgentData?: UserAgentData; readonly deviceMemory?: number };
  const ua = nav.userAgentData;
  const brand =
    ua?.brands.find((b) => !/not.?a.?brand/i.test(b.brand) && b.brand !== 'Chromium') ??
    ua?.brands.find((b) => !/not.?a.?brand/i.test(b.brand));
  const parts = ua
    ? [`${brand ? `${brand.brand} ${brand.version}` : 'browser'} on ${ua.platform || 'unknown OS'}${ua.mobile ? ' (mobile)' : ''}`]
    : [navigator.userAgent];
  if (navigator.hardwareConcurrency) parts.push(`${navigator.hardwareConcurrency} cores`);
  if (nav.deviceMemory) parts.push(`≥${nav.deviceMemory} GB memory`);
  parts.push(`screen ${screen.width}×${screen.height}`);
  return parts.join(' · ').slice(0, 256);
}

async function main(): Promise<void> {
  let options: PageOptions;
  try {
    options = readOptions();
  } catch (error) {
    fail(errorMessage(error));
    return;
  }
  const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'participant-training' });
  worker.addEventListener('message', (event: MessageEvent<WorkerToPage>) => onWorkerMessage(event.data));
  worker.addEventListener('error', (event) => fail(event.message || 'the training worker crashed'));
  // The backend starts up while the task is read and the data chosen.
  worker.postMessage({ type: 'init', backend: options.backend } satisfies PageToWorker);
  const dataPanel = new DataPanel();
  panel = dataPanel;
  $('epsilon-budget-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const value = Number($<HTMLInputElement>('epsilon-budget-input').value);
    if (value > 0) worker.postMessage({ type: 'lower-budget', epsilonBudget: value } satisfies PageToWorker);
  });
  $('leave').addEventListener('click', () => {
    worker.postMessage({ type: 'leave' } satisfies PageToWorker);
    left = true;
    dataPanel.lock();
    setStatus('left');
    $<HTMLButtonElement>('leave').disabled = true;
  });

  try {
    task = await fetchTask();
  } catch (error) {
    fail(errorMessage(error));
    return;
  }
  showTask(task);
  // The worker times the task's model on each backend while the user picks data.
  if (!options.backend) worker.postMessage({ type: 'choose', job: jobForTask(task) } satisfies PageToWorker);
  dataPanel.setTask(task);
  let data: StartData;
  try {
    data = task.demoData && !options.ownData ? await demoData(task, options.shard) : await ownData(task, dataPanel);
  } catch (error) {
    fail(errorMessage(error));
    return;
  }
  if (left || failed) return;
  dataPanel.lock(data.kind === 'local');
  if (data.kind === 'demo') setStatus('loading-data', 'the demo shard');
  const { data: sendable, transfer } = transferable(data);
  worker.postMessage(
    {
      type: 'start',
      url: location.origin,
      task,
      data: sendable,
      platform: deviceDescription(),
      epsilonBudget: options.epsilonBudget,
      maxDelta: options.maxDelta,
      accountant: options.accountant,
      token: options.token,
    } satisfies PageToWorker,
    transfer,
  );
}

void main();
