#!/usr/bin/env node
'use strict';
/*
 * Builds build/ruvector.node, the Node-API addon, with one compiler call.
 *
 * Why not node-gyp: an N-API addon is just a position-independent shared
 * object, and this one is a single C file linked against the static
 * libruvector.a. A direct compiler call needs no Python, no gyp project and
 * never tries to download Node headers (node-gyp does unless --nodedir is
 * set), so `npm install` works offline and takes about a second.
 *
 * Inputs (environment):
 *   RUVECTOR_BUILD   CMake build directory holding libruvector.a
 *                    (default: ../../build relative to this package, i.e. the
 *                    repository's build/). Built with cmake when missing.
 *   RUVECTOR_SOURCE  ruvector source tree (default: the build directory's
 *                    CMake source directory, else ../.. of this package)
 *   NODE_INCLUDE     directory holding node_api.h (default: the headers
 *                    installed beside the running node, else /usr/include/node)
 *   CC, CFLAGS, LDFLAGS  compiler and extra flags (CFLAGS replaces -O2 -g)
 */
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');

const pkgDir = path.resolve(__dirname, '..');

function fail(msg) {
  console.error(`ruvector: ${msg}`);
  process.exit(1);
}

function run(cmd, args) {
  console.log(`> ${cmd} ${args.join(' ')}`);
  try {
    execFileSync(cmd, args, { stdio: 'inherit' });
  } catch (e) {
    fail(`${cmd} failed (${e.status === null ? e.message : 'exit ' + e.status})`);
  }
}

function isSourceTree(dir) {
  return dir && fs.existsSync(path.join(dir, 'include', 'ruvector.h')) &&
    fs.existsSync(path.join(dir, 'CMakeLists.txt'));
}

// The source directory a CMake build directory was configured from.
function cmakeSourceDir(buildDir) {
  const cache = path.join(buildDir, 'CMakeCache.txt');
  if (!fs.existsSync(cache)) return null;
  const m = /^CMAKE_HOME_DIRECTORY:INTERNAL=(.*)$/m.exec(fs.readFileSync(cache, 'utf8'));
  return m ? m[1].trim() : null;
}

function findSource(buildDir) {
  const candidates = [process.env.RUVECTOR_SOURCE, cmakeSourceDir(buildDir),
    path.resolve(pkgDir, '..', '..')];
  for (const c of candidates) if (c && isSourceTree(c)) return path.resolve(c);
  fail('cannot find the ruvector source tree (include/ruvector.h); set RUVECTOR_SOURCE');
}

function findNodeHeaders() {
  const candidates = [process.env.NODE_INCLUDE,
    path.resolve(path.dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node', '/usr/local/include/node'];
  for (const c of candidates) if (c && fs.existsSync(path.join(c, 'node_api.h'))) return c;
  fail('cannot find node_api.h; install the Node.js headers (Debian: apt-get install libnode-dev) ' +
    'or set NODE_INCLUDE to their directory');
}

// Linker flags of a pkg-config module, or the plain -l flag without one.
function pkgLibs(module, fallback) {
  try {
    const out = execFileSync('pkg-config', ['--libs', module], { encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (out) return out.split(/\s+/);
  } catch (e) {
    // no pkg-config or no .pc file: the library's usual name still links
  }
  return [fallback];
}

function splitFlags(s) {
  return s ? s.split(/\s+/).filter(Boolean) : [];
}

function main() {
  const buildDir = path.resolve(process.env.RUVECTOR_BUILD || path.join(pkgDir, '..', '..', 'build'));
  const lib = path.join(buildDir, 'libruvector.a');
  let srcDir;
  if (!fs.existsSync(lib)) {
    srcDir = findSource(buildDir);
    console.log(`ruvector: ${lib} is missing; building it with cmake`);
    run('cmake', ['-S', srcDir, '-B', buildDir, '-DCMAKE_BUILD_TYPE=RelWithDebInfo']);
    run('cmake', ['--build', buildDir, '--target', 'ruvector_static', '-j',
      String(Math.max(1, os.cpus().length))]);
    if (!fs.existsSync(lib)) fail(`cmake did not produce ${lib}`);
  } else {
    srcDir = findSource(buildDir);
  }

  const outDir = path.join(pkgDir, 'build');
  fs.mkdirSync(outDir, { recursive: true });
  const out = path.join(outDir, 'ruvector.node');
  const tmp = `${out}.${process.pid}.tmp`;
  const cc = process.env.CC || 'cc';
  const args = [
    '-std=c11', '-D_GNU_SOURCE',
    ...(process.env.CFLAGS ? splitFlags(process.env.CFLAGS) : ['-O2', '-g']),
    '-Wall', '-Wextra', '-Wno-unused-parameter',
    '-fPIC', '-shared', '-fvisibility=hidden',
    '-I', findNodeHeaders(), '-I', path.join(srcDir, 'include'),
    path.join(pkgDir, 'src', 'addon.c'), lib,
    // Keep the library's symbols private to the addon so another copy of
    // ruvector loaded in the same process cannot be bound to by mistake.
    '-Wl,--exclude-libs,ALL',
    ...pkgLibs('libcjson', '-lcjson'), ...pkgLibs('libxxhash', '-lxxhash'),
    '-lpthread', '-lm', ...splitFlags(process.env.LDFLAGS),
    '-o', tmp,
  ];
  run(cc, args);
  // Rename into place so a running process never sees a half-written file.
  fs.renameSync(tmp, out);
  console.log(`ruvector: built ${path.relative(process.cwd(), out) || out}`);
}

main();
