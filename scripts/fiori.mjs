// fiori.mjs - convert the unpacked @sap-ux/fiori-docs-embeddings package into
// the two files ruvector's demo, tests and benchmarks read:
//
//   OUT_DIR/fiori.jsonl  one point per line, in the package's order:
//                        {"id": ..., "vector": [384 floats],
//                         "payload": {"title", "category", "path",
//                                     "chunk_index", "excerpt"}}
//   OUT_DIR/fiori.fvecs  the same vectors alone (int32 dim, dim float32,
//                        little-endian, per row), for tests
//
// usage: node scripts/fiori.mjs PACKAGE_DIR OUT_DIR
//
// The package stores data/embeddings/embeddings.bin (n x dim float32,
// little-endian, L2-normalised all-MiniLM-L6-v2 sentence embeddings) and
// data/embeddings/records.jsonl (n records, same order). Everything is
// checked before anything is written, and each output is written to a
// temporary name and renamed, so a file that exists is complete.

import fs from 'node:fs';
import path from 'node:path';

const EXCERPT_CHARS = 200;

function die(msg) {
	process.stderr.write(`fiori.mjs: ${msg}\n`);
	process.exit(1);
}

// Shortest decimal that reads back as exactly this float32 through the same
// path the C reader takes (strtod to double, then a cast to float), so the
// JSON file is compact and still carries the exact vectors.
function floatText(v) {
	for (let p = 6; p <= 9; p++) {
		const s = v.toPrecision(p);
		if (Math.fround(Number(s)) === v)
			return String(Number(s));
	}
	return String(v);
}

// The first EXCERPT_CHARS characters of the record's text with runs of
// white space folded, cut at a code point (never inside a surrogate pair).
function excerpt(text) {
	const flat = String(text ?? '').replace(/\s+/g, ' ').trim();
	const cps = Array.from(flat);
	if (cps.length <= EXCERPT_CHARS)
		return flat;
	return cps.slice(0, EXCERPT_CHARS).join('').trimEnd() + '...';
}

function writeAtomic(file, data) {
	const tmp = `${file}.tmp-${process.pid}`;
	fs.writeFileSync(tmp, data);
	fs.renameSync(tmp, file);
}

function main() {
	if (process.argv.length !== 4)
		die('usage: node scripts/fiori.mjs PACKAGE_DIR OUT_DIR');
	const pkg = process.argv[2];
	const out = process.argv[3];
	const embDir = path.join(pkg, 'data', 'embeddings');

	let meta;
	try {
		meta = JSON.parse(fs.readFileSync(path.join(embDir, 'metadata.json'), 'utf8'));
	} catch (e) {
		die(`cannot read ${path.join(embDir, 'metadata.json')}: ${e.message}`);
	}
	const dim = meta.dimensions;
	if (!Number.isInteger(dim) || dim <= 0 || dim > 16000)
		die(`metadata.json: bad dimensions ${JSON.stringify(dim)}`);

	const lines = fs.readFileSync(path.join(embDir, 'records.jsonl'), 'utf8')
		.split('\n').filter((l) => l.trim().length > 0);
	const n = lines.length;
	if (meta.totalVectors !== undefined && meta.totalVectors !== n)
		die(`records.jsonl has ${n} records, metadata.json says ${meta.totalVectors}`);

	const bin = fs.readFileSync(path.join(embDir, 'embeddings.bin'));
	if (bin.length !== n * dim * 4)
		die(`embeddings.bin is ${bin.length} bytes, expected ${n} x ${dim} x 4 = ${n * dim * 4}`);

	const fvecs = Buffer.alloc(n * (4 + dim * 4));
	const json = [];
	const ids = new Set();
	for (let i = 0; i < n; i++) {
		let rec;
		try {
			rec = JSON.parse(lines[i]);
		} catch (e) {
			die(`records.jsonl line ${i + 1}: ${e.message}`);
		}
		if (typeof rec.id !== 'string' || rec.id.length === 0 || Buffer.byteLength(rec.id) > 255)
			die(`records.jsonl line ${i + 1}: bad id ${JSON.stringify(rec.id)}`);
		if (ids.has(rec.id))
			die(`records.jsonl line ${i + 1}: duplicate id ${rec.id}`);
		ids.add(rec.id);

		const vec = new Array(dim);
		let norm = 0;
		fvecs.writeInt32LE(dim, i * (4 + dim * 4));
		for (let j = 0; j < dim; j++) {
			const v = bin.readFloatLE((i * dim + j) * 4);
			if (!Number.isFinite(v))
				die(`embeddings.bin: vector ${i} (${rec.id}) has a non-finite value at ${j}`);
			norm += v * v;
			vec[j] = floatText(v);
			fvecs.writeFloatLE(v, i * (4 + dim * 4) + 4 + j * 4);
		}
		// The package says the vectors are unit length; a different layout
		// (say big-endian or float16) would show up here as nonsense norms.
		if (Math.abs(Math.sqrt(norm) - 1) > 1e-3)
			die(`embeddings.bin: vector ${i} (${rec.id}) has norm ${Math.sqrt(norm)}, expected 1`);

		const payload = {
			title: String(rec.title ?? ''),
			category: String(rec.category ?? ''),
			path: String(rec.path ?? ''),
			chunk_index: Number.isInteger(rec.chunk_index) ? rec.chunk_index : 0,
			excerpt: excerpt(rec.excerpt ?? rec.content),
		};
		json.push(`{"id":${JSON.stringify(rec.id)},"vector":[${vec.join(',')}],` +
			`"payload":${JSON.stringify(payload)}}`);
	}

	fs.mkdirSync(out, { recursive: true });
	writeAtomic(path.join(out, 'fiori.fvecs'), fvecs);
	writeAtomic(path.join(out, 'fiori.jsonl'), json.join('\n') + '\n');
	process.stdout.write(`fiori: ${n} points of dimension ${dim}\n`);
}

main();
