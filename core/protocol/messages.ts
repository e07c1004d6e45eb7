import type { InputSchema } from '../data/schema.ts';
import type { AccountantKind } from '../privacy/epsilon.ts';
import type { Ack } from './errors.ts';

/** Bumped on any incompatible change to events, payloads or frames. */
export const PROTOCOL_VERSION = 1;

/** Binary data as it travels: an ArrayBuffer in browsers, a Buffer (a Uint8Array) in Node. */
export type Binary = ArrayBuffer | Uint8Array;

export const ArchitectureName = ['mlp', '2nn', 'cnn'] as const;
export type ArchitectureName = (typeof ArchitectureName)[number];

/** Plain JSON data, as JSON.parse returns it. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/** Enough to rebuild the exact model on any side: same layers, same weight order. */
export interface ModelSpec {
  /** A built-in architecture, or 'custom': a task's own tfjs model, rebuilt from `topology`. */
  readonly architecture: ArchitectureName | 'custom';
  /** Input shape without the batch dimension, e.g. [784] or [28, 28, 1]. */
  readonly inputShape: readonly number[];
  readonly numClasses: number;
  /**
   * Image tasks: the [height, width, channels] each flat example is reshaped
   * to, so the built-in cnn convolves over the task's real image (any size,
   * grayscale or colour). Absent: a square grayscale image is assumed.
   */
  readonly imageShape?: readonly [number, number, number];
  /**
   * 'custom' only: the model's tfjs layers configuration, `{ className, config }` as
   * `LayersModel.getClassName()` / `getConfig()` give it (model.json's modelTopology in
   * camelCase), so every side rebuilds it synchronously with public tfjs APIs.
   */
  readonly topology?: JsonValue;
}

/** One weight tensor of the model, in flattening order. */
export interface WeightShape {
  readonly name: string;
  readonly shape: readonly number[];
}

/** Client-side privacy applied to each update before it leaves the device. */
export interface UpdatePrivacy {
  /** L2 bound S: the update is scaled to norm <= S. */
  readonly clipNorm: number;
  /** Standard deviation (not variance) of the Gaussian noise added per coordinate after clipping. */
  readonly noiseStd: number;
  /**
   * Secure aggregation with distributed Skellam noise: the variance per coordinate, in the
   * secure sum's integer units, of the Skellam noise each participant adds after quantising
   * (noiseStd is then 0). See core/privacy/distributed-noise.ts.
   */
  readonly skellamVariance?: number;
}

/** Sample-level DP-SGD in local training: protects each training example of a participant. */
export interface SampleDpConfig {
  /** C: every example's gradient is clipped to this L2 norm. */
  readonly clipNorm: number;
  /** σ: noise std on each step's clipped gradient sum is σ·C. */
  readonly noiseMultiplier: number;
  /** B: expected batch size of Poisson sampling, q = B / local examples. */
  readonly expectedBatchSize: number;
  /** δ of the (ε, δ) each participant's ledger reports. */
  readonly delta: number;
  /** Default ε budget per participant dataset; a participant may set a smaller one. */
  readonly epsilonBudget?: number;
  /** The task's accountant for the participants' ledgers (absent: 'auto', the smaller of the PLD and RDP bounds). */
  readonly accountant?: AccountantKind;
}

/**
 * Client-level DP as the coordinator's accountant charges one round: what each
 * participant's own ledger charges. 'central': every round released while the
 * participant is in the population, selected or not (Poisson sampling at
 * sampleRate); 'distributed': only rounds whose sum holds its update.
 */
export interface ClientDpAnnouncement {
  readonly placement: 'central' | 'distributed';
  readonly sampleRate: number;
  readonly noiseMultiplier: number;
  /** True when the noise multiplier only bounds the round's RDP (Skellam): ledgers convert with RDP, not PLD. */
  readonly rdpOnly?: boolean;
}

/** What a participant does in one round. */
export interface FitConfig {
  readonly epochs: number;
  readonly batchSize: number;
  readonly learningRate: number;
  /** Present when the round asks for clipping (and optionally noise) of the whole update. */
  readonly privacy?: UpdatePrivacy;
  /** Present when local training must be DP-SGD. */
  readonly sampleDp?: SampleDpConfig;
  /** Present under client-level DP: the round's (q, z) as the accountant charges it. */
  readonly clientDp?: ClientDpAnnouncement;
  /**
   * FedProx (Li et al. 2020): μ of the proximal term (μ/2)·‖w − w_global‖²
   * added to the local loss, pulling the local model towards the round's
   * global weights. Absent or 0: plain local training.
   */
  readonly proximalMu?: number;
  /** Present when the update must be sent compressed (`--update-encoding`, docs/compression.md); absent: float32. */
  readonly compression?: UpdateCompression;
}

/** How values travel in a frame (its dtype byte, docs/protocol.md §5.3). Models travel as float32 or float16 only. */
export const UpdateEncodingName = ['float32', 'float16', 'int8', 'int4'] as const;
export type UpdateEncodingName = (typeof UpdateEncodingName)[number];
export const ModelEncodingName = ['float32', 'float16'] as const;
export type ModelEncodingName = (typeof ModelEncodingName)[number];

/** The round's update encoding, as FitConfig.compression carries it. */
export interface UpdateCompression {
  readonly encoding: UpdateEncodingName;
  /** int4 only: the seed of the round's Hadamard rotation (a uint32), the same for every participant and the coordinator. */
  readonly rotationSeed?: number;
}

export interface TaskSummary {
  readonly name: string;
  readonly description: string;
  readonly model: ModelSpec;
  readonly weightShapes: readonly WeightShape[];
  readonly paramCount: number;
  /** What an example looks like: participants check and prepare their own data against it. */
  readonly input: InputSchema;
  /** Class names, index = label (e.g. "0".."9", or a CSV label column's values). */
  readonly classes: readonly string[];
  /** Public demo data on the coordinator, if the task has some: each participant takes its shard of it. */
  readonly demoData?: DemoDataSource;
  /** Set when local training is DP-SGD, so participants build the private trainer before the first round. */
  readonly sampleDp?: SampleDpConfig;
  /** Present when the task fine-tunes: only these weights are trained and travel each round (docs/fine-tuning.md). */
  readonly fineTune?: FineTuneSummary;
}

/**
 * A fine-tuning task's split of the model: the global weights of every
 * round:start and every update frame (and secure sum) hold only the values of
 * `trainableWeights`, in `model.weights` order; the frozen values (every other
 * weight, same order) never change and are fetched once with `model:frozen`.
 */
export interface FineTuneSummary {
  /** Indices into `weightShapes` of the trained weight tensors, ascending. */
  readonly trainableWeights: readonly number[];
  /** Values of those tensors: the count of every update and round weights frame. */
  readonly trainableParamCount: number;
  /** SHA-256 (hex) of the frozen values as little-endian float32: what `model:frozen` returns, and the cache key. */
  readonly frozenHash: string;
}

/** `model:frozen` request: the frozen weights of a fine-tuning task, by their hash. */
export interface FrozenWeightsRequest {
  readonly hash: string;
}

/** `model:frozen` answer. */
export interface FrozenWeightsMessage {
  readonly hash: string;
  /** Frame of kind Weights holding the frozen values (paramCount − trainableParamCount of them). */
  readonly weights: Binary;
}

/**
 * 'dataset': an encoded Dataset (core/data/dataset.ts), ready to train.
 * 'csv': a CSV file of a tabular task, prepared on the device like the participant's own CSV.
 */
export interface DemoDataSource {
  readonly url: string;
  readonly format: 'dataset' | 'csv';
}

export interface GlobalModelMessage {
  /** Number of aggregations that produced these weights (0 = initial model). */
  readonly version: number;
  /** Frame of kind Weights: every value, or only the trainable ones when the task fine-tunes. */
  readonly weights: Binary;
  /** Fine-tuning: the hash of the frozen values the weights are completed with (TaskSummary.fineTune.frozenHash). */
  readonly frozenHash?: string;
}

export interface ClientInfo {
  /** The tfjs backend really in use, e.g. "webgpu", "wasm". */
  readonly backend: string;
  /** Adapter or device description, when the backend reports one. */
  readonly adapter?: string;
  /** WASM backend: the threads really in use (1 unless the page is cross-origin isolated). */
  readonly threads?: number;
  /** Number of local training examples. */
  readonly numExamples: number;
  /** Free-form platform string, e.g. the user agent or "node 20". */
  readonly platform?: string;
}

export interface JoinRequest {
  readonly protocolVersion: number;
  /** Sent again on reconnect so the coordinator recognises the participant. */
  readonly participantId?: string;
  /** The secret from the earlier JoinAccepted: without it a known id is not given back (ids are public in the status). */
  readonly rejoinSecret?: string;
  readonly client: ClientInfo;
}

export interface JoinAccepted {
  readonly participantId: string;
  /** Proves on reconnect that this participant is the one that joined; keep it private. */
  readonly rejoinSecret: string;
  readonly task: TaskSummary;
  readonly model: GlobalModelMessage;
  readonly round: number;
}

export interface RoundStartMessage {
  readonly round: number;
  /** The weights to train from; the update must name this version. */
  readonly model: GlobalModelMessage;
  readonly config: FitConfig;
  /** Wall-clock deadline (ms since the Unix epoch): the coordinator closes the round then, and later updates get WRONG_ROUND. */
  readonly deadline: number;
  /**
   * Present when the round uses secure aggregation: the participant does not
   * send `update`, it runs the four secagg steps with the index it was given.
   */
  readonly secagg?: SecAggRoundInfo;
  /**
   * 'async' when the coordinator runs asynchronous buffered aggregation: the
   * round is the model version handed out, round:end of it does not abort the
   * training, and the update may arrive after later versions (docs/async.md).
   */
  readonly mode?: 'async';
}

/** core/secagg's SecAggConfig as it travels (the round seed as binary). */
export interface SecAggWireConfig {
  readonly round: number;
  readonly participants: number;
  readonly neighbours: number | 'all';
  readonly threshold: number;
  readonly roundSeed: Binary;
  readonly vectorLength: number;
  readonly quantization: { readonly clipRange: number; readonly quantizationRange: number };
  /** b: masked words in Z_{2^b}, packed b bits each; absent: 32. */
  readonly wordBits?: number;
  /** true: every input is rotated with the round's seeded block rotation and padded to vectorLength (int4); absent: unrotated. */
  readonly rotated?: boolean;
  /** k on a cluster: every participant refuses to unmask a cohort of fewer survivors (docs/cluster.md); absent: the threshold alone. */
  readonly minSurvivors?: number;
}

export interface SecAggRoundInfo {
  readonly config: SecAggWireConfig;
  /** This participant's index in 1..n for the round; every secagg message it sends must carry it as `from`. */
  readonly index: number;
}

/** Step 0, participant → coordinator. */
export interface SecAggAdvertiseWire {
  readonly round: number;
  readonly from: number;
  readonly encryptionKey: Binary;
  readonly maskingKey: Binary;
}

/** Step 0, coordinator → each participant that advertised: the keys of entry i are piece i of each blob (65 bytes each). */
export interface SecAggKeysWire {
  readonly round: number;
  readonly indices: readonly number[];
  readonly encryptionKeys: Binary;
  readonly maskingKeys: Binary;
}

/** Step 1, participant → coordinator: one ciphertext per live neighbour, `to[i]`'s is piece i of `ciphertexts`. */
export interface SecAggSharesWire {
  readonly round: number;
  readonly from: number;
  readonly to: readonly number[];
  readonly ciphertexts: Binary;
}

/** Step 1, coordinator → each participant that shared: the ciphertexts addressed to it, `from[i]`'s is piece i. */
export interface SecAggForwardedWire {
  readonly round: number;
  readonly to: number;
  readonly from: readonly number[];
  readonly ciphertexts: Binary;
}

/** Step 2, participant → coordinator: the masked update, uint32 little-endian. */
export interface SecAggMaskedWire {
  readonly round: number;
  readonly from: number;
  readonly masked: Binary;
}

/** Step 2, coordinator → each participant whose masked input arrived. */
export interface SecAggUnmaskRequestWire {
  readonly round: number;
  readonly survivors: readonly number[];
  readonly dropped: readonly number[];
}

/** Step 3, participant → coordinator: shares as equal pieces of a blob, owner by owner. */
export interface SecAggUnmaskWire {
  readonly round: number;
  readonly from: number;
  readonly selfMaskOwners: readonly number[];
  readonly selfMaskShares: Binary;
  readonly maskingKeyOwners: readonly number[];
  readonly maskingKeyShares: Binary;
}

export interface SecAggAccepted {
  readonly round: number;
}

export interface TrainMetrics {
  readonly loss: number;
  readonly accuracy: number;
}

export interface UpdateMessage {
  readonly round: number;
  readonly baseVersion: number;
  /** Local examples, which weight the update. Treated as public, as DP-SGD libraries do (it also sets q). */
  readonly numExamples: number;
  /** Local loss and accuracy. Omitted under DP-SGD: they are computed from raw data and not covered by the guarantee. */
  readonly metrics?: TrainMetrics;
  /** Wall time spent training, ms. Omitted under any DP: timing depends on the local data. */
  readonly trainMs?: number;
  /** Frame of kind Update: new local weights minus the round's global weights. */
  readonly update: Binary;
  /** With DP-SGD: ε this participant's data has spent, this update included (at the task's δ). */
  readonly epsilon?: number;
}

export interface DeclineMessage {
  readonly round: number;
  /** Human-readable reason, shown on the dashboard. */
  readonly reason: string;
  /** True when the participant will decline every later round too (its privacy budget is spent). */
  readonly final: boolean;
}

export interface UpdateAccepted {
  readonly round: number;
  /** Updates received so far in this round, this one included. */
  readonly received: number;
}

export type RoundOutcome = 'aggregated' | 'skipped';

export interface EvalMetrics {
  readonly loss: number;
  readonly accuracy: number;
}

export interface RoundEndMessage {
  readonly round: number;
  readonly outcome: RoundOutcome;
  /** Why a round was skipped (too few updates, ...). */
  readonly reason?: string;
  /** The global model version after this round. */
  readonly modelVersion: number;
  readonly metrics?: EvalMetrics;
  /** Under client-level DP, the (q, z) this round was charged with: participants in the population charge their own ledgers. */
  readonly clientDp?: ClientDpAnnouncement;
}

export interface FederationDoneMessage {
  readonly reason: string;
  readonly round: number;
  readonly metrics?: EvalMetrics;
}

export type ParticipantPhase = 'idle' | 'training' | 'uploading';

export interface ProgressMessage {
  readonly round: number;
  /** Local epochs completed so far (0 while the first runs). */
  readonly epoch: number;
  readonly epochs: number;
  /** Fraction of the round's local training done, in [0, 1]. */
  readonly fraction: number;
}

/** Events the coordinator sends to participants. */
export interface ServerToClientEvents {
  'round:start': (message: RoundStartMessage) => void;
  'round:end': (message: RoundEndMessage) => void;
  'federation:done': (message: FederationDoneMessage) => void;
  'secagg:keys': (message: SecAggKeysWire) => void;
  'secagg:forwarded': (message: SecAggForwardedWire) => void;
  'secagg:unmask-request': (message: SecAggUnmaskRequestWire) => void;
}

/** Events participants send to the coordinator; requests carry an acknowledgement. */
export interface ClientToServerEvents {
  join: (request: JoinRequest, ack: (result: Ack<JoinAccepted>) => void) => void;
  update: (message: UpdateMessage, ack: (result: Ack<UpdateAccepted>) => void) => void;
  decline: (message: DeclineMessage, ack: (result: Ack<{ readonly round: number }>) => void) => void;
  progress: (message: ProgressMessage) => void;
  'secagg:advertise': (message: SecAggAdvertiseWire, ack: (result: Ack<SecAggAccepted>) => void) => void;
  'secagg:shares': (message: SecAggSharesWire, ack: (result: Ack<SecAggAccepted>) => void) => void;
  'secagg:masked': (message: SecAggMaskedWire, ack: (result: Ack<SecAggAccepted>) => void) => void;
  'secagg:unmask': (message: SecAggUnmaskWire, ack: (result: Ack<SecAggAccepted>) => void) => void;
  'model:frozen': (request: FrozenWeightsRequest, ack: (result: Ack<FrozenWeightsMessage>) => void) => void;
}
