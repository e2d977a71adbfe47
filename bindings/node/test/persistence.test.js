'use strict';
// Durability across handles (reopen, autoCommit, commit), the file's own
// settings winning over defaults, the writer lock, and concurrent calls.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { VectorDB } = require('..');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ruvector-node-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let fileNo = 0;
const newPath = () => path.join(tmp, `p${fileNo++}.rvf`);

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function randomVectors(n, dim, seed) {
  const r = rng(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: dim }, () => r() * 2 - 1));
}

test('reopen the same storagePath in a new VectorDB and find the data', async () => {
  const file = newPath();
  const pts = randomVectors(300, 16, 1);
  const db = new VectorDB({ dimensions: 16, storagePath: file, distanceMetric: 'Euclidean' });
  await db.insertBatch(pts.map((vector, i) => ({ id: `r${i}`, vector, metadata: { i, even: i % 2 === 0 } })));
  const single = await db.insert({ vector: pts[0], metadata: { single: true } });
  assert.equal(await db.delete('r5'), true);
  const before = await db.search({ vector: pts[10], k: 10 });
  await db.close();

  // No dimensions or metric given: the file's settings apply.
  const again = new VectorDB({ storagePath: file });
  assert.equal(await again.len(), 300);
  const st = await again.stats();
  assert.equal(st.dimension, 16);
  assert.equal(st.metric, 'Euclidean');
  assert.deepEqual(await again.get('r42'), { id: 'r42', vector: pts[42], metadata: { i: 42, even: true } });
  assert.deepEqual((await again.get(single)).metadata, { single: true });
  assert.equal(await again.get('r5'), null, 'the delete was durable too');
  assert.deepEqual(await again.search({ vector: pts[10], k: 10 }), before);
  const evens = await again.search({ vector: pts[10], k: 10, filter: { even: true } });
  assert.equal(evens.length, 10);
  assert.ok(evens.every((h) => h.metadata.even === true));
  await again.close();
});

test('autoCommit: false keeps changes until commit(); close discards the rest', async () => {
  const file = newPath();
  const pts = randomVectors(40, 8, 2);
  const db = new VectorDB({ dimensions: 8, storagePath: file, autoCommit: false });
  await db.insertBatch(pts.slice(0, 20).map((vector, i) => ({ id: `a${i}`, vector })));
  assert.equal(await db.len(), 20, 'visible before commit');
  assert.equal((await db.stats()).uncommittedChanges, true);
  await db.commit();
  assert.equal((await db.stats()).uncommittedChanges, false);
  await db.insertBatch(pts.slice(20).map((vector, i) => ({ id: `b${i}`, vector })));
  assert.equal(await db.delete('a0'), true);
  assert.equal(await db.len(), 39);
  await db.close();

  const again = new VectorDB({ storagePath: file });
  assert.equal(await again.len(), 20, 'only the committed batch survives');
  assert.notEqual(await again.get('a0'), null);
  assert.equal(await again.get('b0'), null);
  await again.close();
});

test('an existing file: contradicting options reject, and one writer at a time', async () => {
  const file = newPath();
  const db = new VectorDB({ dimensions: 8, storagePath: file, distanceMetric: 'Cosine' });
  await db.insert({ id: 'x', vector: new Float32Array(8).fill(1) });
  // While db holds the file, a second handle cannot write it.
  const second = new VectorDB({ storagePath: file });
  await assert.rejects(second.len(), (e) => e.code === 'RV_EBUSY' && e.message.includes(file));
  await second.close();
  await db.close();

  const wrongDim = new VectorDB({ dimensions: 12, storagePath: file });
  await assert.rejects(wrongDim.len(), /dimension 8, but dimensions is 12/);
  await wrongDim.close();
  const wrongMetric = new VectorDB({ storagePath: file, distanceMetric: 'Euclidean' });
  await assert.rejects(wrongMetric.ready(), /uses distanceMetric 'Cosine', but 'Euclidean'/);
  await wrongMetric.close();
  // The refused handles released the file.
  const ok = new VectorDB({ dimensions: 8, storagePath: file });
  assert.equal(await ok.len(), 1);
  await ok.close();
});

test('a file that cannot be created rejects with the operating system reason', async () => {
  const db = new VectorDB({ dimensions: 4, storagePath: path.join(tmp, 'no', 'such', 'dir.rvf') });
  await assert.rejects(db.len(), (e) => e.code === 'RV_EIO' && /No such file or directory/.test(e.message));
  await db.close();
  // A file that is not a collection is refused, not overwritten.
  const junk = path.join(tmp, 'junk.rvf');
  fs.writeFileSync(junk, 'this is not a ruvector file, just some text to be refused');
  const bad = new VectorDB({ storagePath: junk });
  await assert.rejects(bad.len(), (e) => e.code === 'RV_ECORRUPT' && /not a ruvector file/.test(e.message));
  await bad.close();
  assert.equal(fs.readFileSync(junk, 'utf8').startsWith('this is not'), true);
});

test('the default storagePath is ./ruvector.rvf in the working directory', async () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'cwd-'));
  const cwd = process.cwd();
  process.chdir(dir);
  let db;
  try {
    db = new VectorDB({ dimensions: 3 });
  } finally {
    process.chdir(cwd); // the path was resolved in the constructor
  }
  await db.insert({ id: 'd', vector: [1, 2, 3] });
  assert.equal((await db.stats()).storagePath, path.join(dir, 'ruvector.rvf'));
  assert.ok(fs.existsSync(path.join(dir, 'ruvector.rvf')));
  await db.close();
});

test('50 concurrent searches, and searches beside a running batch insert', async () => {
  const dim = 24;
  const pts = randomVectors(1500, dim, 5);
  const db = new VectorDB({ dimensions: dim, storagePath: newPath(), distanceMetric: 'Euclidean' });
  await db.insertBatch(pts.map((vector, i) => ({ id: `c${i}`, vector, metadata: { g: i % 3 } })));
  const queries = randomVectors(50, dim, 6);
  const sequential = [];
  for (const q of queries) sequential.push(await db.search({ vector: q, k: 10, filter: { g: { $ne: 1 } } }));
  const concurrent = await Promise.all(queries.map((q) => db.search({ vector: q, k: 10, filter: { g: { $ne: 1 } } })));
  assert.deepEqual(concurrent, sequential);

  // Writers and readers at once: every call succeeds and the batch lands whole.
  const more = randomVectors(500, dim, 8);
  const writing = db.insertBatch(more.map((vector, i) => ({ id: `m${i}`, vector })));
  const reading = Promise.all(queries.map((q) => db.search({ vector: q, k: 5 })));
  const counting = db.len();
  const [ids, results, n] = await Promise.all([writing, reading, counting]);
  assert.equal(ids.length, 500);
  assert.ok(results.every((r) => r.length === 5));
  assert.ok(n === 1500 || n === 2000, `count seen during the batch: ${n}`);
  assert.equal(await db.len(), 2000);
  // close() waits for calls still running.
  const last = Promise.all(queries.slice(0, 10).map((q) => db.search({ vector: q, k: 3 })));
  await db.close();
  assert.equal((await last).length, 10);
});
