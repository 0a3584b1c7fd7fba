// `berth webhooks create|list|delete|deliveries`: signed event notifications (admin scope). The signing
// secret is printed once, at create, as the server shows it only then.

import type { Delivery, Webhook } from '../api.js'
import { table, when } from '../format.js'
import { UsageError } from '../usage.js'
import { appArg, client, COMMON_OPTIONS, CONNECTION_HELP, helped, parse, printJson, type Command } from './common.js'

const HELP = `usage: berth webhooks list
       berth webhooks create --target URL [--app APP] [--event NAME]...
       berth webhooks delete ID
       berth webhooks deliveries ID

list        the webhooks (never their secrets): ID, APP (* for every app), URL, EVENTS, CREATED.
create      adds one. berth POSTs matching events to URL as JSON, signed with X-Berth-Signature:
            sha256=HMAC of the body; the secret is printed once, now. Failed deliveries are retried.
  --target URL    where to POST (--url is berth's own address, as for every command)
  --app APP       only events of this app (default: every app the token may see)
  --event NAME    an action (deploy, rollback, env.update) or a prefix ending in "." (node.); repeat it
                  for several (default: deploy, rollback, start, stop, restart, node., certificate.)
delete      removes webhook ID.
deliveries  webhook ID's delivery history, newest first: STATE, ATTEMPTS, LAST STATUS or error.
Needs the admin scope.

${CONNECTION_HELP}
`

const OPTIONS = { target: { type: 'string' }, app: { type: 'string' }, event: { type: 'string', multiple: true } } as const

export const command: Command = { help: HELP, options: { ...COMMON_OPTIONS, ...OPTIONS }, run: webhooksCommand }

async function webhooksCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parse(argv, OPTIONS)
  if (helped(values, HELP)) return 0
  const [sub, id, ...extra] = positionals
  if (extra.length) throw new UsageError(`too many arguments: ${extra.join(' ')}`)
  if (sub !== 'create' && (values.app !== undefined || values.event !== undefined || values.target !== undefined)) throw new UsageError('--target, --app and --event go with webhooks create')
  const api = client(values, env)
  const needId = (what: string) => {
    if (!id || !/^[0-9a-f]{12}$/.test(id)) throw new UsageError(`webhooks ${what} needs the webhook id (12 hex digits, from berth webhooks list)`)
    return id
  }
  switch (sub) {
    case undefined:
    case 'list': {
      const answer = await api.request<{ webhooks: Webhook[] }>('GET', '/v1/webhooks')
      if (values.json) printJson(answer)
      else if (answer.webhooks.length === 0) process.stdout.write('no webhooks\n')
      else process.stdout.write(table([['ID', 'APP', 'URL', 'EVENTS', 'CREATED'], ...answer.webhooks.map((w) => [w.id, w.app ?? '*', w.url, w.events.join(','), when(w.createdAt)])]))
      return 0
    }
    case 'create': {
      if (id) throw new UsageError('webhooks create takes --target URL, not an argument')
      if (typeof values.target !== 'string') throw new UsageError('webhooks create needs --target URL (where berth POSTs the events)')
      const body: { url: string; app?: string; events?: string[] } = { url: values.target }
      if (values.app !== undefined) body.app = appArg(values.app, 'berth webhooks create --url URL --app APP')
      if (values.event) body.events = values.event.flatMap((e) => e.split(',')).map((e) => e.trim()).filter(Boolean)
      const hook = await api.request<Webhook & { secret: string }>('POST', '/v1/webhooks', body)
      if (values.json) {
        printJson(hook)
        return 0
      }
      process.stdout.write(`webhook ${hook.id}: ${hook.events.join(', ')} of ${hook.app ?? 'every app'} to ${hook.url}\n`)
      process.stdout.write(`secret: ${hook.secret}\n(shown only now: keep it where the receiver checks X-Berth-Signature)\n`)
      return 0
    }
    case 'delete': {
      const hook = needId('delete')
      await api.request('DELETE', `/v1/webhooks/${hook}`)
      if (values.json) printJson({ deleted: hook })
      else process.stdout.write(`deleted webhook ${hook}\n`)
      return 0
    }
    case 'deliveries': {
      const hook = needId('deliveries')
      const answer = await api.request<{ deliveries: Delivery[] }>('GET', `/v1/webhooks/${hook}/deliveries`)
      if (values.json) printJson(answer)
      else if (answer.deliveries.length === 0) process.stdout.write(`webhook ${hook} has no deliveries yet\n`)
      else {
        const rows = answer.deliveries.map((d) => [d.id, d.event, d.state, String(d.attempts), d.lastStatus === null ? (d.lastError ?? '-') : String(d.lastStatus), when(d.createdAt)])
        process.stdout.write(table([['ID', 'EVENT', 'STATE', 'ATTEMPTS', 'LAST', 'CREATED'], ...rows]))
      }
      return 0
    }
    default:
      throw new UsageError(`unknown webhooks command "${sub}"; use list, create, delete or deliveries`)
  }
}
