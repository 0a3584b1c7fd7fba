// `berth start|stop|restart APP`: operate the node on the current release. Each is recorded like a deployment
// and followed step by step; the exit code is its outcome, so a script can tell a restart that failed.

import { appArg, client, COMMON_OPTIONS, CONNECTION_HELP, helped, parse, printJson, type Command } from './common.js'
import { startAndFollow } from './deploy.js'
import { UsageError } from '../usage.js'

const WHAT = {
  start: `Starts APP's node on the current release and verifies it: starting, verifying (the node answers,
the health URL answers 2xx, it stays up for the stable window, at most 2 s). Refused when it already runs.`,
  stop: `Stops APP's node (bin/APP stop, then SIGTERM, then SIGKILL, each after its timeout): one step,
stopping. It stays stopped, also across berth restarts, until berth start or a deploy.`,
  restart: `Restarts APP's node on the current release: stopping, starting, verifying (as berth start). The
node's last exit then reads "stopped by restart", not as a crash.`,
} as const

function operation(action: keyof typeof WHAT): Command {
  const help = `usage: berth ${action} APP

${WHAT[action]}
Prints each step as it starts and ends; exits 0 when it succeeded, 1 when it failed (with the reason).
While another deployment or operation of APP runs, berth refuses with DEPLOYMENT_IN_PROGRESS naming it.
Needs the operate scope. --json prints the finished operation (as berth deployments APP ID --json).

${CONNECTION_HELP}
`
  return {
    help,
    options: COMMON_OPTIONS,
    run: async (argv, env = process.env) => {
      const { values, positionals } = parse(argv, {})
      if (helped(values, help)) return 0
      const app = appArg(positionals[0], `berth ${action} APP`)
      if (positionals.length > 1) throw new UsageError(`${action} takes one app, got ${positionals.join(' ')}`)
      const out = values.json ? process.stderr : process.stdout
      const done = await startAndFollow(client(values, env), app, action, undefined, out)
      if (values.json) printJson(done)
      return done.state === 'succeeded' ? 0 : 1
    },
  }
}

export const start = operation('start')
export const stop = operation('stop')
export const restart = operation('restart')
