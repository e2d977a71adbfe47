'use strict';
// A small semantic-search session: create a collection, add documents with
// metadata, search with and without a filter, fetch, delete, reopen.
//   node examples/basic.js [path/to/file.rvf]
const os = require('os');
const path = require('path');
const fs = require('fs');
const { VectorDB } = require('..');

// Stand-in for an embedding model: a fixed pseudo-random vector per word,
// summed over the words of a text, so texts sharing words are near.
const DIM = 64;
function embed(text) {
  const v = new Float32Array(DIM);
  for (const word of text.toLowerCase().match(/[a-z]+/g)) {
    let h = 2166136261;
    for (const c of word) h = Math.imul(h ^ c.charCodeAt(0), 16777619);
    for (let i = 0; i < DIM; i++) {
      h = Math.imul(h ^ (h >>> 13), 0x5bd1e995);
      v[i] += ((h >>> 0) / 4294967296) - 0.5;
    }
  }
  return v;
}

const docs = [
  { id: 'hnsw', text: 'graph index for approximate nearest neighbour search', lang: 'en', year: 2016 },
  { id: 'ivf', text: 'inverted file index with clustering for vector search', lang: 'en', year: 2011 },
  { id: 'pq', text: 'product quantization compresses vectors for search', lang: 'en', year: 2010 },
  { id: 'bm25', text: 'keyword ranking function for text search', lang: 'en', year: 1994 },
  { id: 'graphe', text: 'index de graphe pour la recherche de voisins', lang: 'fr', year: 2016 },
];

async function main() {
  const scratch = process.argv[2] ? null : fs.mkdtempSync(path.join(os.tmpdir(), 'ruvector-'));
  const file = process.argv[2] || path.join(scratch, 'docs.rvf');
  const db = new VectorDB({ dimensions: DIM, distanceMetric: 'Cosine', storagePath: file });

  const ids = await db.insertBatch(docs.map((d) => ({
    id: d.id, vector: embed(d.text), metadata: { text: d.text, lang: d.lang, year: d.year },
  })));
  console.log(`stored ${ids.length} documents in ${file}`);

  const query = embed('nearest neighbour graph search');
  console.log('\nnearest to "nearest neighbour graph search" (score = cosine distance):');
  for (const hit of await db.search({ vector: query, k: 3 })) {
    console.log(`  ${hit.score.toFixed(3)}  ${hit.id.padEnd(7)} ${hit.metadata.text}`);
  }

  console.log('\nthe same, English documents from 2010 on:');
  const filter = { lang: 'en', year: { $gte: 2010 } };
  for (const hit of await db.search({ vector: query, k: 3, filter })) {
    console.log(`  ${hit.score.toFixed(3)}  ${hit.id.padEnd(7)} ${hit.metadata.year}`);
  }

  const pq = await db.get('pq');
  console.log(`\nget('pq'): ${pq.vector.length}-d vector, metadata ${JSON.stringify(pq.metadata)}`);
  console.log(`delete('bm25'): ${await db.delete('bm25')}, now ${await db.len()} documents`);
  await db.close();

  // Every write was committed before its promise resolved: a new handle sees it.
  const again = new VectorDB({ storagePath: file });
  console.log(`reopened: ${await again.len()} documents, metric ${(await again.stats()).metric}`);
  await again.close();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
