'use strict';
/*
 * ruvector for Node.js: the VectorDB class of the published `ruvector`
 * package over the C library, through the Node-API addon in src/addon.c.
 *
 * The addon does the work on the libuv thread pool and knows nothing of
 * options, ids or metadata objects; this file validates arguments (so that
 * mistakes fail with messages about the caller's values), generates ids,
 * turns metadata to and from JSON, and sequences a handle's life:
 *
 *   - the constructor starts opening the file and returns at once; every
 *     method waits for the open, and an open failure rejects them all;
 *   - every method call is tracked until it settles, so close() can wait
 *     for the calls made before it and only then close the C handle, which
 *     must never be closed under a running call.
 */
const crypto = require('crypto');
const path = require('path');

function loadAddon() {
  const file = path.join(__dirname, 'build', 'ruvector.node');
  try {
    return require(file);
  } catch (e) {
    if (e && e.code === 'MODULE_NOT_FOUND') {
      throw new Error(`ruvector: the native addon ${file} is not built; ` +
        'run `npm run build` in the package (see README.md)');
    }
    throw e;
  }
}

const native = loadAddon();

const DEFAULT_STORAGE_PATH = './ruvector.rvf';
const DEFAULT_DIMENSIONS = 384;
const MAX_DIMENSIONS = 16000;
const MAX_ID_BYTES = 255;
// The C library's own defaults (include/ruvector.h RV_OPEN_OPTS_INIT).
const DEFAULT_HNSW = { m: 16, efConstruction: 200, efSearch: 64 };

// Option value (case-insensitive) -> [library metric number, canonical name].
const METRICS = new Map([
  ['euclidean', [0, 'Euclidean']], ['l2', [0, 'Euclidean']],
  ['cosine', [1, 'Cosine']],
  ['dotproduct', [2, 'DotProduct']], ['dot', [2, 'DotProduct']], ['ip', [2, 'DotProduct']],
]);
const LIBRARY_METRICS = { l2: 'Euclidean', cosine: 'Cosine', ip: 'DotProduct' };

function parseMetric(value) {
  if (typeof value !== 'string') {
    throw new TypeError(`distanceMetric must be 'Euclidean', 'Cosine' or 'DotProduct', got ${typeof value}`);
  }
  const key = value.toLowerCase();
  if (key === 'manhattan') {
    throw new Error("distanceMetric 'Manhattan' is not supported by this version of ruvector; " +
      "use 'Euclidean', 'Cosine' or 'DotProduct'");
  }
  const m = METRICS.get(key);
  if (!m) {
    throw new RangeError(`unknown distanceMetric '${value}'; use 'Euclidean', 'Cosine' or 'DotProduct'`);
  }
  return m;
}

function checkUint(value, name, min) {
  if (!Number.isInteger(value) || value < min || value > 0xffffffff) {
    throw new RangeError(`${name} must be an integer >= ${min}, got ${value}`);
  }
  return value;
}

function checkId(id, where) {
  if (typeof id !== 'string') throw new TypeError(`${where}: id must be a string, got ${typeof id}`);
  if (id.length === 0) throw new RangeError(`${where}: id must not be empty`);
  if (id.includes('\0')) throw new RangeError(`${where}: id must not contain a NUL character`);
  const bytes = Buffer.byteLength(id, 'utf8');
  if (bytes > MAX_ID_BYTES) {
    throw new RangeError(`${where}: id is ${bytes} bytes of UTF-8, the limit is ${MAX_ID_BYTES}`);
  }
  return id;
}

function vectorLength(v, where) {
  if (Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView))) return v.length;
  throw new TypeError(`${where}: vector must be a Float32Array or an array of numbers`);
}

function checkDimension(v, dim, where) {
  const len = vectorLength(v, where);
  if (len !== dim) {
    throw new RangeError(`${where}: vector has ${len} values but the collection's dimension is ${dim}`);
  }
}

function metadataText(metadata, where) {
  if (metadata === undefined || metadata === null) return null;
  if (typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new TypeError(`${where}: metadata must be a plain object`);
  }
  return JSON.stringify(metadata);
}

function filterText(filter) {
  if (filter === undefined || filter === null) return null;
  if (typeof filter === 'string') return filter;
  if (typeof filter !== 'object' || Array.isArray(filter)) {
    throw new TypeError('search: filter must be an object (MongoDB-style) or a JSON string');
  }
  return JSON.stringify(filter);
}

function closedError() {
  const e = new Error('the database is closed');
  e.code = 'RV_ECLOSED';
  return e;
}

class VectorDB {
  #ready;          // Promise<handle>: resolves once the file is open
  #path;          // absolute path of the .rvf file
  #dim = 0;        // the collection's dimension, from the file
  #autoCommit;
  #efSearch;       // per-handle search default from hnswConfig.efSearch, or 0
  #pending = new Set();
  #closed = false;
  #closing = null;

  /**
   * Opens the collection at options.storagePath, creating it when missing.
   * See index.d.ts for the options. Throws at once for invalid options;
   * failures to open the file reject the first (and every) method call.
   */
  constructor(options = {}) {
    if (options === null || typeof options !== 'object') {
      throw new TypeError('VectorDB options must be an object');
    }
    const dimsGiven = options.dimensions ?? options.dimension;
    const dim = dimsGiven ?? DEFAULT_DIMENSIONS;
    if (!Number.isInteger(dim) || dim < 1 || dim > MAX_DIMENSIONS) {
      throw new RangeError(`dimensions must be an integer from 1 to ${MAX_DIMENSIONS}, got ${dim}`);
    }
    const metricGiven = options.distanceMetric ?? options.metric;
    const [metric, metricName] = parseMetric(metricGiven ?? 'Cosine');

    const hnsw = options.hnswConfig ?? options.hnsw ?? {};
    if (typeof hnsw !== 'object') throw new TypeError('hnswConfig must be an object');
    const m = checkUint(hnsw.m ?? DEFAULT_HNSW.m, 'hnswConfig.m', 2);
    const efc = checkUint(hnsw.efConstruction ?? DEFAULT_HNSW.efConstruction, 'hnswConfig.efConstruction', 1);
    const efs = checkUint(hnsw.efSearch ?? DEFAULT_HNSW.efSearch, 'hnswConfig.efSearch', 1);
    this.#efSearch = hnsw.efSearch ?? 0;

    if (options.quantization !== undefined && options.quantization !== null &&
        options.quantization.type !== 'none') {
      throw new Error('quantization is not supported by this version of ruvector');
    }

    const storagePath = options.storagePath ?? options.path ?? DEFAULT_STORAGE_PATH;
    if (typeof storagePath !== 'string' || storagePath.length === 0 || storagePath.includes('\0')) {
      throw new TypeError('storagePath must be a non-empty string');
    }
    // Resolved now: a later process.chdir() must not move the database.
    const file = path.resolve(storagePath);
    this.#path = file;

    const autoCommit = options.autoCommit ?? true;
    if (typeof autoCommit !== 'boolean') throw new TypeError('autoCommit must be a boolean');
    this.#autoCommit = autoCommit;

    this.#ready = native.open(file, dim, metric, m, efc, efs).then((info) => {
      const fileMetric = LIBRARY_METRICS[info.metric];
      // An existing file keeps its settings; options that were given
      // explicitly and contradict them are an error, not silently ignored.
      let mismatch = null;
      if (dimsGiven !== undefined && info.dim !== dim) {
        mismatch = `${file} holds vectors of dimension ${info.dim}, but dimensions is ${dim}`;
      } else if (metricGiven !== undefined && fileMetric !== metricName) {
        mismatch = `${file} uses distanceMetric '${fileMetric}', but '${metricName}' was asked for`;
      }
      if (mismatch) {
        native.close(info.handle);
        const e = new Error(mismatch);
        e.code = 'RV_EINVAL';
        throw e;
      }
      this.#dim = info.dim;
      return info.handle;
    });
    // The failure is reported by the method calls that await it; without
    // this, a database nobody uses would crash the process on a bad path.
    this.#ready.catch(() => {});
  }

  /** Same as new VectorDB({ dimensions }). */
  static withDimensions(dimensions) {
    return new VectorDB({ dimensions });
  }

  // Run fn (an async function of the handle) as a tracked call.
  #call(fn) {
    if (this.#closed) return Promise.reject(closedError());
    const p = this.#ready.then(fn);
    this.#pending.add(p);
    const forget = () => this.#pending.delete(p);
    p.then(forget, forget);
    return p;
  }

  /** Resolves to this database once its file is open; rejects if it cannot be. */
  ready() {
    return this.#call(async () => this);
  }

  /** Insert (or replace, when the id exists) one vector; resolves to its id. */
  insert(entry) {
    return this.#call(async (h) => (await this.#upsert(h, [entry], true))[0]);
  }

  /** Insert (or replace) many vectors in one call; resolves to their ids. */
  insertBatch(entries) {
    return this.#call((h) => this.#upsert(h, entries, false));
  }

  async #upsert(h, entries, single) {
    if (!Array.isArray(entries)) throw new TypeError('insertBatch expects an array of entries');
    const n = entries.length;
    if (n === 0) return [];
    const dim = this.#dim;
    const ids = new Array(n);
    const payloads = new Array(n);
    const flat = new Float32Array(n * dim);
    for (let i = 0; i < n; i++) {
      const e = entries[i];
      const where = single ? 'insert' : `insertBatch: entries[${i}]`;
      if (e === null || typeof e !== 'object') throw new TypeError(`${where}: entry must be an object`);
      const id = e.id === undefined || e.id === null ? crypto.randomUUID() : checkId(e.id, where);
      checkDimension(e.vector, dim, single ? where : `${where} (id "${id}")`);
      ids[i] = id;
      flat.set(e.vector, i * dim);
      payloads[i] = metadataText(e.metadata, where);
    }
    await native.upsert(h, ids, flat, payloads, this.#autoCommit);
    return ids;
  }

  /**
   * k nearest neighbours of query.vector, nearest first, as
   * [{ id, score, metadata? }], score being the distance (see README.md).
   */
  search(query) {
    return this.#call(async (h) => {
      if (query === null || typeof query !== 'object') throw new TypeError('search expects a query object');
      checkDimension(query.vector, this.#dim, 'search');
      const k = checkUint(query.k ?? 10, 'search: k', 1);
      const ef = checkUint(query.efSearch ?? this.#efSearch, 'search: efSearch', 0);
      const q = query.vector instanceof Float32Array ? query.vector : Float32Array.from(query.vector);
      const hits = await native.search(h, q, k, ef, filterText(query.filter));
      for (const hit of hits) {
        if (hit.metadata !== undefined) hit.metadata = JSON.parse(hit.metadata);
      }
      return hits; // hits.searchId (not enumerable) identifies this search for feedback()
    });
  }

  /** The stored entry { id, vector, metadata? }, or null when there is none. */
  get(id) {
    return this.#call(async (h) => {
      checkId(id, 'get');
      const r = await native.get(h, id);
      if (r === null) return null;
      const out = { id, vector: r.vector };
      if (r.metadata !== undefined) out.metadata = JSON.parse(r.metadata);
      return out;
    });
  }

  /** Delete by id; resolves to true when the id existed. */
  delete(id) {
    return this.#call(async (h) => {
      checkId(id, 'delete');
      return (await native.remove(h, [id], this.#autoCommit)) > 0;
    });
  }

  /** Number of vectors stored. */
  len() {
    return this.#call((h) => native.count(h));
  }

  /** True when no vector is stored. */
  isEmpty() {
    return this.#call(async (h) => (await native.count(h)) === 0);
  }

  /** Make every change so far durable (needed only with autoCommit: false). */
  commit() {
    return this.#call((h) => native.commit(h));
  }

  /** Collection settings and storage figures. */
  stats() {
    return this.#call(async (h) => {
      const s = await native.stats(h);
      return {
        count: s.count,
        dimension: s.dim,
        metric: LIBRARY_METRICS[s.metric],
        memoryUsage: s.memoryBytes,
        indexType: 'HNSW',
        hnswConfig: { m: s.m, efConstruction: s.efConstruction, efSearch: s.efSearch },
        deleted: s.deleted,
        fileBytes: s.fileBytes,
        segments: s.segments,
        generation: s.generation,
        uncommittedChanges: s.dirty,
        simd: s.simd,
        storagePath: this.#path,
      };
    });
  }

  /**
   * Relevance feedback on a search: searchId is the `searchId` property of
   * the array search() returned, id one of its hits, reward in [-1, 1]
   * (a click, a rating, a conversion; negative for a rejection). The event
   * is logged in the file (committed now with autoCommit) and, when
   * learning is on, trains the collection's query adapter at once.
   */
  feedback(searchId, id, reward) {
    return this.#call(async (h) => {
      if (typeof searchId !== 'string') throw new TypeError('feedback: searchId must be the string search() returned');
      checkId(id, 'feedback');
      if (typeof reward !== 'number') throw new TypeError('feedback: reward must be a number');
      await native.feedback(h, searchId, id, reward, this.#autoCommit);
    });
  }

  /**
   * Turn learning from feedback on or off for this collection (stored in
   * the file). Off by default; searches then rank by raw similarity.
   */
  setLearning(on) {
    return this.#call(async (h) => {
      await native.setLearning(h, Boolean(on), this.#autoCommit);
    });
  }

  /**
   * Close the database after the calls made before it settle. Changes not
   * yet committed (autoCommit: false without commit()) are discarded. Every
   * later call rejects with "the database is closed". Safe to call twice.
   */
  close() {
    if (!this.#closing) {
      this.#closed = true;
      this.#closing = (async () => {
        await Promise.allSettled([...this.#pending]);
        let h;
        try {
          h = await this.#ready;
        } catch (e) {
          return; // never opened: nothing to close
        }
        native.close(h);
      })();
    }
    return this.#closing;
  }
}

module.exports = {
  VectorDB,
  VectorDb: VectorDB,
  version: native.version().version,
  simd: native.version().simd,
};
