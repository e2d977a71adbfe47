// Type declarations for the `ruvector` package (Node-API binding of the
// ruvector C library). The API follows the published `ruvector` package.

/** Distance metrics. Names are case-insensitive; 'l2', 'dot' and 'ip' are accepted too. */
export type DistanceMetric = 'Euclidean' | 'Cosine' | 'DotProduct';

export interface HnswConfig {
  /** Links per node on the upper graph layers, 2..128 (layer 0 has 2m). Default 16. */
  m?: number;
  /** Candidate list while building (>= m). Default 200. */
  efConstruction?: number;
  /**
   * Candidate list while searching. Default 64. Stored in a new file; for an
   * existing file a value given here is used by this handle's searches.
   */
  efSearch?: number;
  /** Accepted for compatibility and ignored: the collection grows as needed. */
  maxElements?: number;
}

export interface DbOptions {
  /** Vector dimension, 1..16000. Default 384. An existing file keeps its own. */
  dimensions?: number;
  /** Alias of dimensions. */
  dimension?: number;
  /** Default 'Cosine'. 'Manhattan' throws: not supported in this version. */
  distanceMetric?: DistanceMetric | string;
  /** Alias of distanceMetric. */
  metric?: DistanceMetric | string;
  /**
   * The collection file (one .rvf file per collection): opened when it
   * exists, created when it does not. Default './ruvector.rvf', resolved
   * against the working directory when the VectorDB is constructed.
   */
  storagePath?: string;
  /** Alias of storagePath. */
  path?: string;
  hnswConfig?: HnswConfig;
  /** Alias of hnswConfig. */
  hnsw?: HnswConfig;
  /**
   * Commit (make durable) every insert, insertBatch and delete before its
   * promise resolves. Default true. With false, call commit() yourself:
   * close() discards uncommitted changes.
   */
  autoCommit?: boolean;
}

/** JSON-serialisable metadata object. */
export type Metadata = Record<string, any>;

export interface VectorEntry<M extends Metadata = Metadata> {
  /** 1..255 bytes of UTF-8 without NUL. A UUIDv4 is generated when omitted. */
  id?: string;
  vector: Float32Array | number[] | ArrayLike<number>;
  metadata?: M;
}

/**
 * A MongoDB-style filter on metadata: {field: value}, $eq $ne $gt $gte $lt
 * $lte $in $nin $exists, $and $or $not, dotted paths ("a.b"). A JSON string
 * of the same is accepted too.
 */
export type Filter = Record<string, any> | string;

export interface SearchQuery {
  vector: Float32Array | number[] | ArrayLike<number>;
  /** Hits wanted, 1..100000. Default 10. */
  k?: number;
  filter?: Filter;
  /** Candidate list for this search (raised to k); default the collection's efSearch. */
  efSearch?: number;
}

/** search()'s result: the hits, plus the id of the search (not enumerable). */
export type SearchResults = SearchResult[] & { readonly searchId: string };

export interface SearchResult<M extends Metadata = Metadata> {
  id: string;
  /**
   * A distance: smaller is nearer. Euclidean: the L2 distance; Cosine:
   * 1 - cosine similarity, in [0, 2]; DotProduct: minus the inner product.
   */
  score: number;
  /** Present when the point has metadata. */
  metadata?: M;
}

export interface StoredEntry<M extends Metadata = Metadata> {
  id: string;
  /** For Cosine collections, the unit vector (vectors are normalised on insert). */
  vector: Float32Array;
  metadata?: M;
}

export interface DbStats {
  count: number;
  dimension: number;
  metric: DistanceMetric;
  /** Heap bytes held by the handle (the memory-mapped file excluded). */
  memoryUsage: number;
  indexType: 'HNSW';
  hnswConfig: { m: number; efConstruction: number; efSearch: number };
  /** Deleted or replaced points whose space a compaction would reclaim. */
  deleted: number;
  /** File size at the last commit. */
  fileBytes: number;
  segments: number;
  /** Commits since the file was created. */
  generation: number;
  uncommittedChanges: boolean;
  /** Distance kernels in use: 'avx512', 'avx2' or 'scalar'. */
  simd: string;
  storagePath: string;
}

/** Errors carry the library's message and a code such as 'RV_EINVAL', 'RV_EBUSY', 'RV_ECLOSED'. */
export interface RuvectorError extends Error {
  code?: string;
}

export class VectorDB {
  /**
   * Opens (or creates) the collection. Invalid options throw at once; a file
   * that cannot be opened rejects every method call with the reason.
   */
  constructor(options?: DbOptions);
  /** Same as new VectorDB({ dimensions }). */
  static withDimensions(dimensions: number): VectorDB;
  /** Resolves once the file is open; rejects with the reason it cannot be. */
  ready(): Promise<this>;
  /** Insert, or replace the point with the same id; resolves to the id. */
  insert(entry: VectorEntry): Promise<string>;
  /** Insert many in one call (all or nothing); resolves to the ids in order. */
  insertBatch(entries: VectorEntry[]): Promise<string[]>;
  /** Nearest first; the array's searchId names the search for feedback(). */
  search(query: SearchQuery): Promise<SearchResults>;
  get(id: string): Promise<StoredEntry | null>;
  /** True when the id existed. */
  delete(id: string): Promise<boolean>;
  len(): Promise<number>;
  isEmpty(): Promise<boolean>;
  /** Make all changes durable; only needed with autoCommit: false. */
  commit(): Promise<void>;
  stats(): Promise<DbStats>;
  /**
   * Relevance feedback: searchId from search(), id one of its hits, reward
   * in [-1, 1]. Logged in the file; trains the query adapter when learning
   * is on.
   */
  feedback(searchId: string, id: string, reward: number): Promise<void>;
  /** Learning from feedback on or off for the collection (off by default). */
  setLearning(on: boolean): Promise<void>;
  /**
   * Waits for calls made before it, then closes; uncommitted changes are
   * discarded. Later calls reject with code 'RV_ECLOSED'. Idempotent.
   */
  close(): Promise<void>;
}

/** Alias used by some versions of the published package. */
export { VectorDB as VectorDb };

/** Version of the C library the addon was built with. */
export const version: string;
/** Distance kernels chosen for this CPU. */
export const simd: string;
