/**
 * Builds this task's data from Fashion-MNIST (MIT; Xiao, Rasul & Vollgraf
 * 2017) as Debian's dataset-fashion-mnist installs it. Run once; the files
 * are committed and nothing is fetched at run time:
 *
 *   npx tsx tasks/fashion-mnist/make-data.ts [/usr/share/datasets/fashion-mnist]
 *
 * Writes a seeded split of the 10,000 t10k images: test (600 images, kept
 * by the coordinator) and train (2,400, served to participants as demo data,
 * each taking its shard). The output depends only on the input and the seed.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { splitIdxPair } from '../../node/data/idx-split.ts';

const SEED = 2017;
const source = process.argv[2] ?? '/usr/share/datasets/fashion-mnist';
const here = path.dirname(fileURLToPath(import.meta.url));
await splitIdxPair(
  path.join(source, 't10k-images-idx3-ubyte.gz'),
  path.join(source, 't10k-labels-idx1-ubyte.gz'),
  [
    { count: 600, prefix: path.join(here, 'test') },
    { count: 2400, prefix: path.join(here, 'train') },
  ],
  SEED,
);
