// The npm peers of the search benchmark, measured as bench_search.c measures
// ruvector: build with m = 16 / ef_construction = 200 (or the engine's
// nearest setting), then recall@10 against the exact ground truth and
// single-thread latency at each ef, one query per call.
//
//   node bench/peers.mjs --engine hnswlib-node|usearch|ruvector-core
//        --base B.fvecs --query Q.fvecs --gt GT.ivecs [--metric l2|cosine|ip]
//        [--name NAME] [--threads 2] [--queries N] [--modules DIR] [--efs 10,20,...]
//
// --modules is the directory holding node_modules (scripts/bench.sh installs
// the packages into data/peers). Prints one JSON object per line: a "build"
// record, then one "search" record per ef; when the engine cannot be loaded
// or fails, an "error" record saying why (and exit status 0, so the caller
// reports it in the table instead of losing the row).
//
// One engine per process, so that the process's RSS growth over the build is
// that engine's memory.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const EFS = [10, 20, 40, 80, 120, 200, 400, 800];
const K = 10;

function parseArgs(argv) {
  const a = { metric: 'l2', name: 'data', threads: 2, queries: 10000, modules: 'data/peers', m: 16, efc: 200, efs: EFS.join(',') };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in a) && !['engine', 'base', 'query', 'gt'].includes(key)) throw new Error(`unknown option ${argv[i]}`);
    a[key] = ['threads', 'queries', 'm', 'efc'].includes(key) ? Number(argv[i + 1]) : argv[i + 1];
  }
  for (const k of ['engine', 'base', 'query', 'gt']) if (!a[k]) throw new Error(`--${k} is required`);
  return a;
}

// .fvecs / .ivecs: per row an int32 dimension then that many 4-byte values.
function readVecs(file, Type) {
  const buf = fs.readFileSync(file);
  const dim = buf.readInt32LE(0);
  const rowBytes = 4 * (dim + 1);
  if (dim <= 0 || buf.length % rowBytes !== 0) throw new Error(`${file}: not a vecs file`);
  const n = buf.length / rowBytes;
  const all = new Type(n * dim);
  const src = new Type(buf.buffer, buf.byteOffset, buf.length / 4);
  for (let i = 0; i < n; i++) all.set(src.subarray(i * (dim + 1) + 1, (i + 1) * (dim + 1)), i * dim);
  return { n, dim, data: all, row: (i) => all.subarray(i * dim, (i + 1) * dim) };
}

const now = () => Number(process.hrtime.bigint()) / 1e9;
const rss = () => process.memoryUsage().rss;

function dirBytes(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.size;
  return fs.readdirSync(p).reduce((s, f) => s + dirBytes(path.join(p, f)), 0);
}

// Read from the installed package.json: some packages' "exports" hide it
// from require().
function pkgVersion(req, name) {
  let dir = path.dirname(req.resolve(name));
  while (!fs.existsSync(path.join(dir, 'package.json')) || path.basename(dir) === 'dist' ||
         JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).name !== name) {
    const up = path.dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
  return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
}

// Each engine: { version, settings, build(base) -> {index_bytes, index_what, open_ms?},
// search(q, ef) -> Promise|array of integer ids }.
const engines = {
  'hnswlib-node': (req, a, dim, tmp) => {
    const { HierarchicalNSW } = req('hnswlib-node');
    const space = { l2: 'l2', cosine: 'cosine', ip: 'ip' }[a.metric];
    let index;
    return {
      version: pkgVersion(req, 'hnswlib-node'),
      settings: `M=${a.m}, efConstruction=${a.efc}; addPoint one by one (the package has no batch or threaded insert), so the build runs on 1 thread`,
      threads: 1,
      build(base) {
        index = new HierarchicalNSW(space, dim);
        index.initIndex(base.n, a.m, a.efc, 100);
        for (let i = 0; i < base.n; i++) index.addPoint(Array.from(base.row(i)), i);
        const f = path.join(tmp, 'hnswlib-node.bin');
        index.writeIndexSync(f);
        const bytes = fs.statSync(f).size;
        const t0 = now();
        const again = new HierarchicalNSW(space, dim);
        again.readIndexSync(f);
        return { index_bytes: bytes, index_what: 'writeIndex file', open_ms: (now() - t0) * 1e3 };
      },
      search(q, ef) {
        index.setEf(ef);
        return index.searchKnn(Array.from(q), K).neighbors;
      },
    };
  },

  usearch: (req, a, dim, tmp) => {
    const usearch = req('usearch');
    const metric = { l2: 'l2sq', cosine: 'cos', ip: 'ip' }[a.metric];
    const file = path.join(tmp, 'usearch.bin');
    let index, curEf = -1;
    const config = (ef) => ({ dimensions: dim, metric, quantization: 'f32', connectivity: a.m,
      expansion_add: a.efc, expansion_search: ef, multi: false });
    return {
      version: pkgVersion(req, 'usearch'),
      settings: `connectivity=${a.m}, expansion_add=${a.efc}, f32; expansion_search is fixed per Index object, so each ef loads the saved index into a new one`,
      threads: a.threads,
      build(base) {
        index = new usearch.Index(config(64));
        const keys = new BigUint64Array(base.n);
        for (let i = 0; i < base.n; i++) keys[i] = BigInt(i);
        index.add(keys, base.data, a.threads);
        index.save(file);
        const t0 = now();
        const again = new usearch.Index(config(64));
        again.load(file);
        return { index_bytes: fs.statSync(file).size, index_what: 'save file', open_ms: (now() - t0) * 1e3 };
      },
      search(q, ef) {
        if (ef !== curEf) {
          index = new usearch.Index(config(ef));
          index.load(file);
          curEf = ef;
        }
        return Array.from(index.search(q, K, 1).keys, Number);
      },
    };
  },

  'ruvector-core': (req, a, dim, tmp) => {
    const core = req('@ruvector/core');
    const Db = core.VectorDb || core.VectorDB;
    const distanceMetric = { l2: 'Euclidean', cosine: 'Cosine', ip: 'DotProduct' }[a.metric];
    const storagePath = path.join(tmp, 'ruvector-core.db');
    let db, n = 0;
    const open = () => new Db({ dimensions: dim, distanceMetric, storagePath,
      hnswConfig: { m: a.m, efConstruction: a.efc, efSearch: 64, maxElements: n } });
    return {
      version: pkgVersion(req, '@ruvector/core'),
      settings: `hnswConfig {m: ${a.m}, efConstruction: ${a.efc}, efSearch: 64}, no quantization, storagePath in a temporary directory; insertBatch in chunks of 1,000; threads are the library's choice; search is async (one awaited promise per query)`,
      threads: 'library',
      async build(base) {
        n = base.n;
        db = open();
        for (let i = 0; i < base.n; i += 1000) {
          const batch = [];
          for (let j = i; j < Math.min(base.n, i + 1000); j++) batch.push({ id: String(j), vector: base.row(j) });
          await db.insertBatch(batch);
        }
        const got = await db.len();
        if (got !== base.n) throw new Error(`len() is ${got} after inserting ${base.n}`);
        return { index_bytes: dirBytes(storagePath), index_what: 'storagePath on disk' };
      },
      async search(q, ef) {
        const res = await db.search({ vector: q, k: K, efSearch: ef });
        return res.map((r) => Number(r.id));
      },
    };
  },
};

async function main() {
  const a = parseArgs(process.argv);
  const emit = (o) => process.stdout.write(JSON.stringify({ dataset: a.name, engine: a.engine, ...o }) + '\n');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rv-peers-'));
  try {
    if (!engines[a.engine]) throw new Error(`unknown engine ${a.engine}`);
    const req = createRequire(path.resolve(a.modules, 'node_modules', 'x.js'));
    const base = readVecs(a.base, Float32Array);
    const qs = readVecs(a.query, Float32Array);
    const gt = readVecs(a.gt, Int32Array);
    if (qs.dim !== base.dim || gt.n < qs.n || gt.dim < K) throw new Error('base, queries and ground truth disagree');
    const nq = Math.min(a.queries, qs.n);
    const eng = engines[a.engine](req, a, base.dim, tmp);
    const rss0 = rss();
    let t0 = now();
    const b = await eng.build(base);
    const buildS = now() - t0;
    emit({ kind: 'build', version: eng.version, settings: eng.settings, n: base.n, dim: base.dim,
      metric: a.metric, m: a.m, ef_construction: a.efc, threads: eng.threads, build_s: +buildS.toFixed(3),
      ...b, memory_bytes: rss() - rss0, memory_what: 'RSS growth over the build' });
    // Warm-up, untimed.
    for (let q = 0; q < Math.min(200, nq); q++) await eng.search(qs.row(q), 10);
    const lat = new Float64Array(nq);
    const efs = a.efs.split(',').map(Number);
    if (efs.some((e) => !Number.isInteger(e) || e < 1)) throw new Error(`bad --efs ${a.efs}`);
    for (const ef of efs) {
      let found = 0, total = 0;
      for (let q = 0; q < nq; q++) {
        t0 = now();
        const ids = await eng.search(qs.row(q), ef);
        const t = now() - t0;
        lat[q] = t;
        total += t;
        const want = gt.data.subarray(q * gt.dim, q * gt.dim + K);
        for (let i = 0; i < Math.min(K, ids.length); i++) if (want.includes(ids[i])) found++;
      }
      const s = Float64Array.from(lat).sort();
      emit({ kind: 'search', ef, recall: +(found / (nq * K)).toFixed(4), qps: +(nq / total).toFixed(1),
        p50_us: +(s[nq >> 1] * 1e6).toFixed(1), p99_us: +(s[Math.floor((nq - 1) * 0.99)] * 1e6).toFixed(1), queries: nq });
    }
  } catch (e) {
    emit({ kind: 'error', error: String(e && e.message ? e.message : e).split('\n')[0] });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main();
