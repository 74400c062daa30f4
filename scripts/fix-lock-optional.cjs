// npm leaves out optional platform packages the registry here cannot serve (biome's darwin/win32/musl
// binaries), and `npm ci` then refuses the lock as out of sync. This adds their lock entries (they are never
// installed on Linux/glibc). Run after `npm install` changes the lock: node scripts/fix-lock-optional.cjs
const fs = require('node:fs');
const lock = JSON.parse(fs.readFileSync('package-lock.json', 'utf8'));
const platforms = {
  'android-arm64': { os: ['android'], cpu: ['arm64'] },
  'android-x64': { os: ['android'], cpu: ['x64'] },
  'darwin-arm64': { os: ['darwin'], cpu: ['arm64'] },
  'darwin-x64': { os: ['darwin'], cpu: ['x64'] },
  'linux-arm64-musl': { os: ['linux'], cpu: ['arm64'], libc: ['musl'] },
  'linux-x64-musl': { os: ['linux'], cpu: ['x64'], libc: ['musl'] },
  'win32-arm64': { os: ['win32'], cpu: ['arm64'] },
  'win32-x64': { os: ['win32'], cpu: ['x64'] },
};
let added = 0;
for (const [parent, pkg] of Object.entries(lock.packages)) {
  if (!parent.endsWith('node_modules/@biomejs/biome')) continue;
  for (const [name, version] of Object.entries(pkg.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    if (lock.packages[key]) continue;
    const platform = platforms[name.replace('@biomejs/cli-', '')];
    if (!platform) continue;
    lock.packages[key] = { version, dev: true, optional: true, license: 'MIT OR Apache-2.0', ...platform };
    added++;
  }
}
fs.writeFileSync('package-lock.json', `${JSON.stringify(lock, null, 2)}\n`);
console.log(`added ${added} optional platform entries`);
