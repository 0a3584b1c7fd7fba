#!/usr/bin/env node
// Run by `npm ci` (the prepare script): installs Debian's haproxy, which berth runs in front of apps with the
// proxy setting, when it is missing and this runs as root. Never fails the install: without root it says how.

import { spawnSync } from 'node:child_process'
import fs from 'node:fs'

const BIN = process.env.BERTH_HAPROXY || '/usr/sbin/haproxy'

if (!fs.existsSync(BIN)) {
  if (process.getuid?.() === 0 && fs.existsSync('/usr/bin/apt-get')) {
    console.log('berth: installing haproxy (apt-get), for apps with the proxy setting')
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    const ok = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env }).status === 0 && spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'haproxy'], { stdio: 'inherit', env }).status === 0
    if (!ok) console.warn('berth: apt-get install haproxy failed; install it before turning the proxy setting on')
  } else {
    console.warn(`berth: ${BIN} not found; apps with the proxy setting need it: sudo apt-get install haproxy (or set BERTH_HAPROXY)`)
  }
}
