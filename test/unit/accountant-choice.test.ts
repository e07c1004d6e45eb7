import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DpFedAvg } from '../../core/aggregation/dp-fedavg.ts';
import type { Strategy } from '../../core/aggregation/strategy.ts';
import { RdpAccountant } from '../../core/privacy/accountant.ts';
import { ClientLevelLedger } from '../../core/privacy/client-ledger.ts';
import { MemoryLedgerStore, PrivacyLedger } from '../../core/privacy/ledger.ts';
import { openParticipantLedger } from '../../core/privacy/participant-budget.ts';
import { pldEpsilon } from '../../core/privacy/pld.ts';
import type { Dataset } from '../../core/data/dataset.ts';
import { SeededRandom } from '../../core/random/prng.ts';
import { parseConfig, type CoordinatorConfig } from '../../coordinator/config.ts';
import { buildStrategy } from '../../coordinator/strategies.ts';
import { accountantText } from '../../web/dashboard/privacy-text.ts';
import { EngineHarness } from '../helpers/engine-harness.ts';

/**
 * The coordinator's accountant choice (--accountant / privacy.accountant):
 * the path from flags to the strategy's ε, budget refusals, checkpoints and
 * the participants' ledgers uses the chosen accountant, with values equal to
 * the PLD module's (or the RDP accountant's) for the same steps.
 */

const ADMIN = ['--admin-token', 'accountant-choice-test-admin-token'];
const Q = 0.3;
const Z = 1.1;
const DELTA = 1e-5;
const CLIENT_DP = ['--client-dp', 'central', '--client-noise-multiplier', String(Z), '--client-sample-rate', String(Q), ...ADMIN];

const pld = (rounds: number) => pldEpsilon([{ sampleRate: Q, noiseMultiplier: Z, steps: rounds }], DELTA).epsilon;
const rdp = (rounds: number) => new RdpAccountant().step({ sampleRate: Q, noiseMultiplier: Z, steps: rounds }).getEpsilon(DELTA);

function config(flags: string[]): CoordinatorConfig {
  return parseConfig(flags, {}) as CoordinatorConfig;
}

/** The DP-FedAvg strategy the coordinator builds for these flags, seeded so tests are repeatable. */
function dpStrategy(flags: string[]): DpFedAvg {
  const c = config(flags);
  return buildStrategy({
    ...c,
    clientDp: { ...c.clientDp!, uniform: new SeededRandom(5), selectionUniform: new SeededRandom(6) },
  }) as DpFedAvg;
}

function chargeRounds(strategy: DpFedAvg, rounds: number): void {
  for (let i = 0; i < rounds; i++) strategy.beginRound({ round: i + 1, globalWeights: new Float32Array(3) }).finish();
}

describe('the accountant the coordinator uses', () => {
  it("--accountant pld: the strategy reports the PLD module's ε for the same rounds, with RDP's next to it", () => {
    const strategy = dpStrategy([...CLIENT_DP, '--accountant', 'pld']);
    chargeRounds(strategy, 5);
    const report = strategy.privacy();
    assert.equal(report.accountant, 'pld');
    assert.equal(report.accountantSetting, 'pld');
    assert.equal(report.epsilon, pld(5));
    assert.equal(report.pldEpsilon, pld(5));
    assert.ok(report.pldEpsilonLower! <= report.epsilon && report.pldEpsilonLower! > 0.95 * report.epsilon);
    assert.equal(report.rdpEpsilon, rdp(5));
    assert.ok(report.epsilon < rdp(5), `PLD ${report.epsilon} is tighter than RDP ${rdp(5)} here`);
  });

  it('the default is auto: the smaller of the two bounds, PLD where it is tighter', () => {
    const strategy = dpStrategy(CLIENT_DP);
    assert.equal(strategy.accountantKind, 'auto');
    chargeRounds(strategy, 5);
    const report = strategy.privacy();
    assert.equal(report.accountantSetting, 'auto');
    assert.equal(report.accountant, 'pld');
    assert.equal(report.epsilon, Math.min(pld(5), rdp(5)));
    assert.equal(report.epsilon, pld(5));
  });

  it("--accountant rdp: ε is exactly the RDP accountant's, as before, and no PLD is computed", () => {
    const strategy = dpStrategy([...CLIENT_DP, '--accountant', 'rdp']);
    chargeRounds(strategy, 5);
    const report = strategy.privacy();
    assert.equal(report.accountant, 'rdp');
    assert.equal(report.epsilon, rdp(5));
    assert.equal(
      report.optimalOrder,
      new RdpAccountant().step({ sampleRate: Q, noiseMultiplier: Z, steps: 5 }).getEpsilonAndOrder(DELTA).optimalOrder,
    );
    assert.equal(report.pldEpsilon, undefined);
  });

  it("budget refusals use the chosen accountant: a budget between PLD's and RDP's ε of the next round", () => {
    const budget = (pld(4) + rdp(4)) / 2;
    assert.ok(pld(4) < budget && budget < rdp(4));
    const withPld = dpStrategy([...CLIENT_DP, '--accountant', 'pld', '--epsilon-budget', String(budget)]);
    const withRdp = dpStrategy([...CLIENT_DP, '--accountant', 'rdp', '--epsilon-budget', String(budget)]);
    chargeRounds(withPld, 3);
    chargeRounds(withRdp, 3);
    assert.deepEqual(withPld.canStartRound(), { ok: true });
    const refused = withRdp.canStartRound();
    assert.equal(refused.ok, false);
    assert.match(refused.ok ? '' : refused.reason, /another round would spend ε = .* \(δ = 0\.00001, RDP accountant\)/);
    // PLD refuses too once its own ε of the next round passes the budget.
    chargeRounds(withPld, 1);
    assert.ok(pld(5) > budget);
    assert.match((withPld.canStartRound() as { reason: string }).reason, /PLD accountant/);
  });

  it('a restored checkpoint recomputes ε from the saved history, under the chosen accountant', () => {
    const before = dpStrategy([...CLIENT_DP, '--accountant', 'pld']);
    chargeRounds(before, 3);
    // What a checkpoint holds: the strategy state as JSON (coordinator/storage/checkpoints.ts).
    const saved = JSON.parse(JSON.stringify(before.saveState())) as unknown;
    const restored = dpStrategy([...CLIENT_DP, '--accountant', 'pld']);
    restored.loadState(saved);
    assert.deepEqual(restored.privacy(), before.privacy());
    assert.equal(restored.name, before.name, "the checkpoint's strategy name still matches");
    // A crash after the checkpoint: the started rounds are charged, then the run continues.
    restored.chargeUnrecordedRounds(1);
    chargeRounds(restored, 1);
    assert.equal(restored.privacy().epsilon, pld(5));
    assert.equal(restored.privacy().rounds, 5);
    // The same checkpoint resumed under RDP gives exactly the RDP accountant's ε: nothing PLD-specific is stored.
    const asRdp = dpStrategy([...CLIENT_DP, '--accountant', 'rdp']);
    asRdp.loadState(saved);
    assert.equal(asRdp.privacy().epsilon, rdp(3));
  });

  it('wrapped strategies (fedadam over DP-FedAvg) report the chosen accountant', () => {
    const strategy: Strategy = buildStrategy(config([...CLIENT_DP, '--accountant', 'pld', '--strategy', 'fedadam']));
    assert.equal(strategy.privacy?.().accountant, 'pld');
  });

  it("the round engine's status and history carry which accountant gave ε", async () => {
    const c = config([...CLIENT_DP, '--accountant', 'pld']);
    const strategy = new DpFedAvg({
      ...c.clientDp!,
      sampleRate: 1e-3,
      epsilonBudget: 1e9,
      uniform: new SeededRandom(2),
      selectionUniform: new SeededRandom(3),
    });
    const h = new EngineHarness({ minClients: 1, rounds: 2 }, 4, strategy);
    h.join();
    h.engine.start();
    await h.settle();
    await h.settle();
    const status = h.engine.status();
    assert.equal(status.history.length, 2);
    assert.equal(status.privacy?.accountant, 'pld');
    assert.equal(status.history[1]!.privacy?.accountant, 'pld');
    assert.equal(status.privacy?.epsilon, pldEpsilon([{ sampleRate: 1e-3, noiseMultiplier: Z, steps: 2 }], DELTA).epsilon);
  });

  it('the dashboard says which accountant gave ε, with both values', () => {
    const auto = dpStrategy(CLIENT_DP);
    chargeRounds(auto, 2);
    assert.equal(
      accountantText(auto.privacy()),
      `ε by the PLD accountant (auto: the smaller bound): PLD ${pld(2).toFixed(3)}, RDP ${rdp(2).toFixed(3)}`,
    );
    const onlyRdp = dpStrategy([...CLIENT_DP, '--accountant', 'rdp']);
    chargeRounds(onlyRdp, 2);
    assert.equal(accountantText(onlyRdp.privacy()), 'ε by the RDP accountant');
  });

  it('flags and task files are checked', () => {
    assert.throws(() => config([...CLIENT_DP, '--accountant', 'prv']), /--accountant must be auto, pld or rdp, got "prv"/);
    assert.throws(() => config(['--accountant', 'pld']), /--accountant needs --client-dp or --dp-sgd-clip/);
    const skellam = [
      '--secure-aggregation',
      '--client-dp',
      'distributed',
      '--client-noise-multiplier',
      '1',
      '--client-sample-rate',
      '1',
      '--expected-clients',
      '5',
      '--min-clients',
      '5',
      '--min-updates',
      '5',
      '--distributed-noise',
      'skellam',
      ...ADMIN,
    ];
    assert.throws(() => config([...skellam, '--accountant', 'pld']), /--accountant pld cannot account --distributed-noise skellam/);
    assert.equal(config([...skellam, '--accountant', 'rdp']).clientDp?.accountant, 'rdp');
    const dpSgd = config(['--dp-sgd-clip', '1', '--dp-sgd-noise-multiplier', '1.1', '--accountant', 'rdp']);
    assert.equal(dpSgd.settings.fit.sampleDp?.accountant, 'rdp');
    assert.equal(
      config(['--dp-sgd-clip', '1', '--dp-sgd-noise-multiplier', '1.1']).settings.fit.sampleDp?.accountant,
      undefined,
      'absent: auto',
    );
  });
});

describe('privacy.accountant in a task file', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'fl-accountant-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reaches client-level DP and the DP-SGD settings; the command line wins', async () => {
    const file = path.join(dir, 'task.json');
    const task = {
      name: 'x',
      description: 'a test task',
      model: 'mlp',
      input: { kind: 'tabular', labelColumn: 'y', features: [{ name: 'a', type: 'numeric' }] },
      classes: ['no', 'yes'],
      data: { train: './train.csv', test: './test.csv' },
      privacy: {
        clientDp: 'central',
        clientNoiseMultiplier: Z,
        clientSampleRate: Q,
        dpSgdClip: 1,
        dpSgdNoiseMultiplier: 1.1,
        accountant: 'rdp',
      },
    };
    await writeFile(file, JSON.stringify(task));
    const fromFile = config(['--task', file, ...ADMIN]);
    assert.equal(fromFile.clientDp?.accountant, 'rdp');
    assert.equal(fromFile.settings.fit.sampleDp?.accountant, 'rdp');
    assert.equal(config(['--task', file, ...ADMIN, '--accountant', 'pld']).clientDp?.accountant, 'pld');
    await writeFile(file, JSON.stringify({ ...task, privacy: { ...task.privacy, accountant: 'moments' } }));
    assert.throws(() => config(['--task', file, ...ADMIN]), /accountant/);
  });
});

describe("participants' ledgers", () => {
  const ROUND = { sampleRate: 0.1, noiseMultiplier: 1.1, steps: 10 };
  const data: Dataset = {
    count: 100,
    features: 2,
    numClasses: 2,
    labels: new Uint8Array(100),
    values: new Float32Array(200).map((_, i) => i),
  };

  it("DP-SGD: the task's accountant reads the ledger (default auto: PLD here), and its budget check uses it", async () => {
    const sampleDp = { clipNorm: 1, noiseMultiplier: 1.1, expectedBatchSize: 10, delta: 1e-5 };
    const pldAfter = (n: number) => pldEpsilon([{ ...ROUND, steps: ROUND.steps * n }], 1e-5).epsilon;
    const rdpAfter = (n: number) => new RdpAccountant().step({ ...ROUND, steps: ROUND.steps * n }).getEpsilon(1e-5);
    const budget = (pldAfter(2) + rdpAfter(2)) / 2;
    const byDefault = await openParticipantLedger(new MemoryLedgerStore(), { ...sampleDp, epsilonBudget: budget }, data);
    const byRdp = await openParticipantLedger(new MemoryLedgerStore(), { ...sampleDp, epsilonBudget: budget, accountant: 'rdp' }, data);
    assert.equal(byDefault.accountantKind, 'auto');
    assert.equal(byRdp.accountantKind, 'rdp');
    assert.deepEqual(await byDefault.charge(ROUND), { charged: true, epsilon: pldAfter(1) });
    assert.deepEqual(await byRdp.charge(ROUND), { charged: true, epsilon: rdpAfter(1) });
    assert.equal(byDefault.accounted.accountant, 'pld');
    assert.equal(byDefault.check(ROUND).allowed, true, 'PLD: a second round fits the budget');
    assert.equal(byRdp.check(ROUND).allowed, false, 'RDP: it does not');
    // The person's own choice wins over the task's.
    const own = await openParticipantLedger(new MemoryLedgerStore(), { ...sampleDp, accountant: 'pld' }, data, { accountant: 'rdp' });
    assert.equal(own.accountantKind, 'rdp');
  });

  it("client-level: a Skellam round (known only by an RDP bound) makes the whole stored history RDP's", async () => {
    const store = new MemoryLedgerStore();
    const open = async () => new ClientLevelLedger(await PrivacyLedger.open(store, 'client-level/x', 1e-5));
    const central = { placement: 'central', sampleRate: 0.5, noiseMultiplier: 1 } as const;
    const first = await open();
    await first.admit(1, central);
    assert.equal(first.ledger.accounted.accountant, 'pld');
    assert.equal(first.ledger.epsilon, pldEpsilon([{ sampleRate: 0.5, noiseMultiplier: 1, steps: 1 }], 1e-5).epsilon);
    await first.admit(2, { placement: 'distributed', sampleRate: 1, noiseMultiplier: 1, rdpOnly: true });
    const expected = new RdpAccountant()
      .step({ sampleRate: 0.5, noiseMultiplier: 1 })
      .step({ sampleRate: 1, noiseMultiplier: 1 })
      .getEpsilon(1e-5);
    assert.equal(first.ledger.accounted.accountant, 'rdp');
    assert.equal(first.ledger.epsilon, expected);
    // Reopened (a reload): the mark was stored, and later Gaussian rounds do not bring PLD back.
    const again = await open();
    await again.admit(3, central);
    assert.equal(again.ledger.accounted.accountant, 'rdp');
    assert.equal(
      again.ledger.epsilon,
      new RdpAccountant()
        .step({ sampleRate: 0.5, noiseMultiplier: 1 })
        .step({ sampleRate: 1, noiseMultiplier: 1 })
        .step({ sampleRate: 0.5, noiseMultiplier: 1 })
        .getEpsilon(1e-5),
    );
  });
});
