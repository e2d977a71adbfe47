'use strict';
// The VectorDB API: inserts, search quality against brute force, filters,
// get/delete, counts, input forms, errors and the score convention.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { VectorDB, VectorDb } = require('..');

const DIM = 32;
const N = 2000;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ruvector-node-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let fileNo = 0;
const newPath = () => path.join(tmp, `t${fileNo++}.rvf`);

// Deterministic data: a failure reproduces on every run.
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
const l2 = (a, b) => Math.sqrt(a.reduce((s, x, i) => s + (x - b[i]) ** 2, 0));
const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);
const cosDist = (a, b) => 1 - dot(a, b) / Math.sqrt(dot(a, a) * dot(b, b));
function bruteForce(data, q, k, dist, keep = () => true) {
  return data.map((v, i) => ({ i, d: dist(v, q) })).filter(({ i }) => keep(i))
    .sort((x, y) => x.d - y.d).slice(0, k);
}

// One shared Euclidean collection of N points for the search tests.
const data = randomVectors(N, DIM, 42);
const groupOf = (i) => i % 4;
let shared;
test.before(async () => {
  shared = new VectorDB({ dimensions: DIM, storagePath: newPath(), distanceMetric: 'Euclidean' });
  const ids = await shared.insertBatch(data.map((vector, i) => ({
    id: `p${i}`, vector, metadata: { group: groupOf(i), n: i, tags: i % 2 ? ['odd'] : ['even'] },
  })));
  assert.equal(ids.length, N);
  assert.equal(ids[17], 'p17');
});
test.after(() => shared.close());

test('create: the file exists once ready and the collection is empty', async () => {
  const file = newPath();
  const db = new VectorDB({ dimensions: 8, storagePath: file });
  assert.equal(await db.ready(), db);
  assert.ok(fs.existsSync(file));
  assert.equal(await db.len(), 0);
  assert.equal(await db.isEmpty(), true);
  const st = await db.stats();
  assert.equal(st.dimension, 8);
  assert.equal(st.metric, 'Cosine', 'Cosine is the default metric');
  await db.close();
});

test('insert without an id generates a UUIDv4; with an id returns it', async () => {
  const db = new VectorDB({ dimensions: 4, storagePath: newPath(), distanceMetric: 'Euclidean' });
  const a = await db.insert({ vector: [1, 0, 0, 0] });
  const b = await db.insert({ vector: [0, 1, 0, 0] });
  assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.notEqual(a, b);
  assert.equal(await db.insert({ id: 'mine', vector: [0, 0, 1, 0], metadata: { k: 'v' } }), 'mine');
  assert.equal(await db.len(), 3);
  assert.equal(await db.isEmpty(), false);
  const got = await db.get(a);
  assert.equal(got.id, a);
  assert.deepEqual(Array.from(got.vector), [1, 0, 0, 0]);
  assert.equal(got.metadata, undefined, 'no metadata was given');
  assert.deepEqual((await db.get('mine')).metadata, { k: 'v' });
  // The same id again replaces the point.
  await db.insert({ id: 'mine', vector: [0, 0, 0, 1], metadata: { k: 'w' } });
  assert.equal(await db.len(), 3);
  const again = await db.get('mine');
  assert.deepEqual(Array.from(again.vector), [0, 0, 0, 1]);
  assert.deepEqual(again.metadata, { k: 'w' });
  // Unicode ids and metadata survive the round trip.
  await db.insert({ id: 'größe-😀', vector: [1, 1, 0, 0], metadata: { t: 'ü € 😀', nested: { a: [1, 2] } } });
  assert.deepEqual((await db.get('größe-😀')).metadata, { t: 'ü € 😀', nested: { a: [1, 2] } });
  await db.close();
});

test('insertBatch 2000 x 32-d: recall@10 >= 0.95 against brute force', async () => {
  assert.equal(await shared.len(), N);
  const queries = randomVectors(100, DIM, 7);
  let found = 0;
  for (const q of queries) {
    const truth = bruteForce(data, q, 10, l2);
    const hits = await shared.search({ vector: q, k: 10 });
    assert.equal(hits.length, 10);
    for (let i = 1; i < hits.length; i++) assert.ok(hits[i - 1].score <= hits[i].score, 'nearest first');
    const want = new Set(truth.map(({ i }) => `p${i}`));
    found += hits.filter((h) => want.has(h.id)).length;
    // Each score is the true distance of that point.
    for (const h of hits) {
      const i = Number(h.id.slice(1));
      assert.ok(Math.abs(h.score - l2(data[i], q)) < 1e-4, `score of ${h.id}`);
      assert.deepEqual(h.metadata.group, groupOf(i));
    }
  }
  const recall = found / (queries.length * 10);
  assert.ok(recall >= 0.95, `recall@10 = ${recall}`);
  // A wider candidate list is never worse here and exact on this size.
  const q = queries[0];
  const wide = await shared.search({ vector: q, k: 10, efSearch: 400 });
  assert.deepEqual(wide.map((h) => h.id), bruteForce(data, q, 10, l2).map(({ i }) => `p${i}`));
});

test('filters: MongoDB-style conditions on metadata', async () => {
  const queries = randomVectors(10, DIM, 99);
  for (const q of queries) {
    const hits = await shared.search({ vector: q, k: 10, filter: { group: 2 } });
    assert.equal(hits.length, 10);
    assert.ok(hits.every((h) => h.metadata.group === 2));
    // Against brute force over the matching points only.
    const truth = bruteForce(data, q, 10, l2, (i) => groupOf(i) === 2).map(({ i }) => `p${i}`);
    const overlap = hits.filter((h) => truth.includes(h.id)).length;
    assert.ok(overlap >= 8, `filtered overlap ${overlap}/10`);
  }
  const q = queries[0];
  const range = await shared.search({ vector: q, k: 5, filter: { n: { $gte: 100, $lt: 110 } } });
  assert.equal(range.length, 5);
  assert.ok(range.every((h) => h.metadata.n >= 100 && h.metadata.n < 110));
  const inList = await shared.search({ vector: q, k: 50, filter: { group: { $in: [1, 3] }, tags: 'odd' } });
  assert.equal(inList.length, 50);
  assert.ok(inList.every((h) => h.metadata.group % 2 === 1));
  const or = await shared.search({ vector: q, k: 3, filter: { $or: [{ n: 5 }, { n: 6 }] } });
  assert.deepEqual(or.map((h) => h.id).sort(), ['p5', 'p6']);
  // A JSON string works as well as an object.
  const text = await shared.search({ vector: q, k: 4, filter: '{"n": {"$in": [1, 2]}}' });
  assert.deepEqual(text.map((h) => h.id).sort(), ['p1', 'p2']);
  const none = await shared.search({ vector: q, k: 4, filter: { group: 9 } });
  assert.deepEqual(none, []);
  // A bad filter rejects with the library's message and code.
  await assert.rejects(shared.search({ vector: q, k: 4, filter: { n: { $near: 3 } } }),
    (e) => e.code === 'RV_EINVAL' && /\$near/.test(e.message));
});

test('get and delete', async () => {
  const db = new VectorDB({ dimensions: DIM, storagePath: newPath(), distanceMetric: 'Euclidean' });
  const pts = randomVectors(50, DIM, 3);
  await db.insertBatch(pts.map((vector, i) => ({ id: `d${i}`, vector, metadata: { i } })));
  const g = await db.get('d7');
  assert.ok(g.vector instanceof Float32Array);
  assert.deepEqual(g.vector, pts[7]);
  assert.deepEqual(g.metadata, { i: 7 });
  assert.equal(await db.get('missing'), null);
  assert.equal(await db.delete('d7'), true);
  assert.equal(await db.delete('d7'), false, 'second delete finds nothing');
  assert.equal(await db.delete('never-there'), false);
  assert.equal(await db.get('d7'), null);
  assert.equal(await db.len(), 49);
  const hits = await db.search({ vector: pts[7], k: 5 });
  assert.ok(!hits.some((h) => h.id === 'd7'), 'a deleted point is not found');
  assert.equal(hits.length, 5);
  for (let i = 0; i < 50; i++) if (i !== 7) assert.equal(await db.delete(`d${i}`), true);
  assert.equal(await db.isEmpty(), true);
  assert.deepEqual(await db.search({ vector: pts[0], k: 5 }), []);
  await db.close();
});

test('vectors as Float32Array, plain arrays and other typed arrays', async () => {
  const db = new VectorDB({ dimensions: 3, storagePath: newPath(), distanceMetric: 'Euclidean' });
  await db.insertBatch([
    { id: 'arr', vector: [0.5, -1.25, 3] },
    { id: 'f32', vector: new Float32Array([1, 2, 3]) },
    { id: 'f64', vector: new Float64Array([-1, 0, 0.25]) },
  ]);
  assert.deepEqual(Array.from((await db.get('arr')).vector), [0.5, -1.25, 3]);
  assert.deepEqual(Array.from((await db.get('f64')).vector), [-1, 0, 0.25]);
  const byArray = await db.search({ vector: [1, 2, 3], k: 3 });
  const byF32 = await db.search({ vector: new Float32Array([1, 2, 3]), k: 3 });
  assert.deepEqual(byArray, byF32);
  assert.equal(byArray[0].id, 'f32');
  assert.equal(byArray[0].score, 0);
  await db.close();
});

test('a wrong dimension rejects with a message naming it', async () => {
  const db = new VectorDB({ dimensions: 4, storagePath: newPath() });
  await assert.rejects(db.insert({ vector: [1, 2, 3] }),
    /vector has 3 values but the collection's dimension is 4/);
  await assert.rejects(db.insertBatch([{ id: 'ok', vector: [1, 2, 3, 4] }, { id: 'bad', vector: [1, 2, 3, 4, 5] }]),
    (e) => /entries\[1\]/.test(e.message) && /"bad"/.test(e.message) && /dimension is 4/.test(e.message));
  await assert.rejects(db.search({ vector: new Float32Array(7), k: 1 }), /7 values .* dimension is 4/);
  assert.equal(await db.len(), 0, 'a rejected batch writes nothing');
  await db.close();
});

test('bad input rejects with a clear message', async () => {
  const db = new VectorDB({ dimensions: 2, storagePath: newPath() });
  await assert.rejects(db.insert({ id: 5, vector: [1, 2] }), /id must be a string/);
  await assert.rejects(db.insert({ id: '', vector: [1, 2] }), /id must not be empty/);
  await assert.rejects(db.insert({ id: 'x'.repeat(256), vector: [1, 2] }), /256 bytes .* limit is 255/);
  await assert.rejects(db.insert({ id: 'a\0b', vector: [1, 2] }), /NUL/);
  await assert.rejects(db.insert({ vector: 'nope' }), /Float32Array or an array/);
  await assert.rejects(db.insert({ vector: [1, 2], metadata: [1] }), /metadata must be a plain object/);
  // Non-finite values are refused by the library, which names the point.
  await assert.rejects(db.insert({ id: 'nan', vector: [1, NaN] }),
    (e) => e.code === 'RV_EINVAL' && /nan/.test(e.message));
  await assert.rejects(db.insertBatch([{ id: 'x', vector: [1, 2] }, { id: 'x', vector: [2, 1] }]),
    (e) => e.code === 'RV_EINVAL' && /x/.test(e.message));
  await assert.rejects(db.search({ vector: [1, 2], k: 0 }), /k must be an integer >= 1/);
  await assert.rejects(db.search({ vector: [1, 2], k: 1.5 }), /k must be an integer/);
  await assert.rejects(db.search({ vector: [1, 2], k: 200000 }), (e) => e.code === 'RV_EINVAL' && /k/.test(e.message));
  await assert.rejects(db.get(42), /id must be a string/);
  await assert.rejects(db.insertBatch('nope'), /array of entries/);
  assert.deepEqual(await db.insertBatch([]), []);
  assert.equal(await db.len(), 0);
  await db.close();
});

test('options: metrics, Manhattan, aliases and bad values', async () => {
  assert.throws(() => new VectorDB({ dimensions: 2, distanceMetric: 'Manhattan', storagePath: newPath() }),
    /'Manhattan' is not supported/);
  assert.throws(() => new VectorDB({ dimensions: 2, distanceMetric: 'Hamming', storagePath: newPath() }),
    /unknown distanceMetric 'Hamming'/);
  assert.throws(() => new VectorDB({ dimensions: 0, storagePath: newPath() }), /dimensions must be an integer from 1/);
  assert.throws(() => new VectorDB({ dimensions: 2.5, storagePath: newPath() }), /dimensions/);
  assert.throws(() => new VectorDB({ dimensions: 2, storagePath: '' }), /storagePath/);
  assert.throws(() => new VectorDB({ dimensions: 2, hnswConfig: { m: -1 }, storagePath: newPath() }), /hnswConfig\.m/);
  assert.throws(() => new VectorDB({ dimensions: 2, autoCommit: 'yes', storagePath: newPath() }), /autoCommit/);
  assert.throws(() => new VectorDB(null), /options must be an object/);
  // A setting the library refuses rejects with its message.
  const badM = new VectorDB({ dimensions: 2, hnswConfig: { m: 1000 }, storagePath: newPath() });
  await assert.rejects(badM.len(), (e) => e.code === 'RV_EINVAL' && /\bm\b/.test(e.message));
  await badM.close();
  // Aliases of the published package and the withDimensions helper.
  assert.equal(VectorDb, VectorDB);
  const alias = new VectorDB({ dimension: 5, metric: 'dot', path: newPath(),
    hnswConfig: { m: 8, efConstruction: 50, efSearch: 20 } });
  const st = await alias.stats();
  assert.equal(st.dimension, 5);
  assert.equal(st.metric, 'DotProduct');
  assert.deepEqual(st.hnswConfig, { m: 8, efConstruction: 50, efSearch: 20 });
  await alias.close();
});

test('score convention: distances, smaller is nearer, for every metric', async () => {
  const pts = randomVectors(20, 6, 11);
  const q = randomVectors(1, 6, 12)[0];
  const cases = [['Euclidean', l2], ['Cosine', cosDist], ['DotProduct', (a, b) => -dot(a, b)]];
  for (const [metric, dist] of cases) {
    const db = new VectorDB({ dimensions: 6, distanceMetric: metric, storagePath: newPath() });
    await db.insertBatch(pts.map((vector, i) => ({ id: String(i), vector })));
    const hits = await db.search({ vector: q, k: 20, efSearch: 100 });
    const truth = bruteForce(pts, q, 20, dist);
    assert.deepEqual(hits.map((h) => Number(h.id)), truth.map(({ i }) => i), `${metric} order`);
    hits.forEach((h, j) => assert.ok(Math.abs(h.score - truth[j].d) < 1e-4,
      `${metric}: score ${h.score} vs distance ${truth[j].d}`));
    await db.close();
  }
});

test('feedback: search ids, errors, and learning that moves the chosen item up', async () => {
  const db = new VectorDB({ dimensions: DIM, storagePath: newPath() });
  const pts = randomVectors(500, DIM, 77);
  await db.insertBatch(pts.map((vector, i) => ({ id: String(i), vector })));
  const q = pts[0].map((x, j) => x + 0.3 * pts[1][j]);
  const hits = await db.search({ vector: q, k: 10 });
  assert.equal(typeof hits.searchId, 'string');
  assert.match(hits.searchId, /^[0-9]+$/);
  assert.ok(!Object.keys(hits).includes('searchId'), 'searchId is not enumerable');
  const again = await db.search({ vector: q, k: 10 });
  assert.notEqual(again.searchId, hits.searchId, 'every search has its own id');

  await assert.rejects(db.feedback('12345', hits[0].id, 1), (e) => e.code === 'RV_ENOTFOUND');
  await assert.rejects(db.feedback(hits.searchId, hits[0].id, 2), (e) => e.code === 'RV_EINVAL' && /reward/.test(e.message));
  const outside = pts.findIndex((_, i) => !hits.some((h) => h.id === String(i)));
  await assert.rejects(db.feedback(hits.searchId, String(outside), 1), (e) => e.code === 'RV_EINVAL');
  await assert.rejects(db.feedback(123, hits[0].id, 1), /searchId/);

  // Users keep choosing the 8th hit: with learning on it climbs.
  const chosen = hits[7].id;
  const rankOf = async () => (await db.search({ vector: q, k: 10 })).findIndex((h) => h.id === chosen);
  await db.setLearning(true);
  for (let i = 0; i < 150; i++) {
    const r = await db.search({ vector: q, k: 10 });
    if (r.some((h) => h.id === chosen)) await db.feedback(r.searchId, chosen, 1);
  }
  const after = await rankOf();
  assert.ok(after >= 0 && after < 7, `chosen item at rank ${after} after feedback (was 7)`);
  await db.setLearning(false);
  assert.equal(await rankOf(), 7, 'learning off gives the plain ranking back');
  await db.close();
});

test('close: later calls reject, close is idempotent, earlier calls finish', async () => {
  const db = new VectorDB({ dimensions: 2, storagePath: newPath() });
  const earlier = db.insert({ id: 'a', vector: [1, 2] });
  const closing = db.close();
  assert.equal(await earlier, 'a', 'a call made before close() completes');
  await closing;
  await db.close();
  await assert.rejects(db.search({ vector: [1, 2], k: 1 }), /the database is closed/);
  await assert.rejects(db.insert({ vector: [1, 2] }), (e) => e.code === 'RV_ECLOSED');
  await assert.rejects(db.len(), /closed/);
  await assert.rejects(db.get('a'), /closed/);
  await assert.rejects(db.delete('a'), /closed/);
  await assert.rejects(db.commit(), /closed/);
});
