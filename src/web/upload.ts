// Release uploads from the app page: the file sent as the request body with its progress shown, the answer
// (uploaded, already there, or berth's problem) and, when asked, the deployment of it right after.

import { api, appPath } from './api.js'
import { run } from './actions.js'
import { h } from './dom.js'
import { bytes } from './format.js'
import type { Deployment, Release } from './schemas.js'
import { hooks, may, state } from './state.js'
import { kept } from './ui.js'

interface UploadView {
  section: HTMLElement
  go: HTMLButtonElement
  cancel: HTMLButtonElement
  bar: HTMLProgressElement
  status: HTMLElement
}

/** The upload form on the app page; kept across re-renders while an upload runs or its result shows. */
export function uploadSection(app: string, keep: boolean): HTMLElement | null {
  if (!may('deploy')) return null
  const old = keep ? kept('upload', app, 'upload') : null
  if (old) return old
  const file = h('input', { id: 'upload-file', type: 'file', accept: '.tar.gz,.tgz,application/gzip,application/x-gzip' })
  const deploy = h('input', { id: 'upload-deploy', type: 'checkbox' })
  const go = h('button', { id: 'upload-go', type: 'submit' }, 'Upload')
  const cancel = h('button', { id: 'upload-cancel', type: 'button', hidden: true }, 'Cancel')
  const bar = h('progress', { id: 'upload-progress', max: 100, value: 0, hidden: true })
  const status = h('span', { id: 'upload-state', role: 'status' })
  const section: HTMLElement = h('div', { id: 'upload', dataset: { app, key: 'upload' } }, h('h3', null, 'Upload a release'),
    h('form', { class: 'inline-form', onsubmit: (ev) => {
      ev.preventDefault()
      const f = file.files?.[0]
      if (!f) return (status.textContent = 'Choose a release tarball (APP-VSN.tar.gz) first.')
      sendRelease(app, f, deploy.checked, { section, go, cancel, bar, status })
    } }, file, ' ', h('label', null, deploy, ' deploy it right after'), ' ', go, ' ', cancel),
    h('div', { class: 'upload-progress' }, bar, ' ', status))
  return section
}

function sendRelease(app: string, file: File, deployAfter: boolean, { section, go, cancel, bar, status }: UploadView): void {
  // XMLHttpRequest, not fetch: only it reports how much of a request body has been sent.
  const xhr = new XMLHttpRequest()
  const show = (pct: number, text: string) => {
    bar.value = pct
    bar.dataset.pct = String(pct)
    status.textContent = text
  }
  const end = () => {
    section.dataset.busy = 'false'
    go.disabled = false
    cancel.hidden = true
  }
  section.dataset.busy = 'true'
  go.disabled = true
  cancel.hidden = false
  bar.hidden = false
  cancel.onclick = () => xhr.abort()
  show(0, `0% of ${bytes(file.size)}`)
  xhr.upload.addEventListener('progress', (e) => {
    const total = e.lengthComputable ? e.total : file.size
    show(Math.floor((e.loaded / total) * 100), `${Math.floor((e.loaded / total) * 100)}% of ${bytes(total)}`)
  })
  // Every byte is sent; berth still checks and unpacks the release before it answers.
  xhr.upload.addEventListener('load', () => show(100, `100% of ${bytes(file.size)} sent; berth is checking and unpacking it…`))
  xhr.addEventListener('load', async () => {
    end()
    let body: (Partial<Release> & { code?: string; detail?: string }) | null = null
    try {
      body = JSON.parse(xhr.responseText)
    } catch {}
    if (xhr.status === 401 && state.me) return hooks.signOut('The token is no longer valid (revoked or expired); sign in again.')
    if (xhr.status !== 200 && xhr.status !== 201) {
      status.textContent = `Upload failed: ${body?.code ?? `HTTP ${xhr.status}`}: ${body?.detail ?? xhr.statusText}`
      status.className = 'error'
      return
    }
    const release = body as Release
    status.className = 'ok'
    status.textContent = `${xhr.status === 201 ? 'Uploaded' : 'Already uploaded:'} ${release.version} (${release.id}).`
    await hooks.refreshApp(app, false)
    if (deployAfter) await run(app, () => api<Deployment>(appPath(app, '/deployments'), { method: 'POST', body: { release: release.id } }))
  })
  xhr.addEventListener('error', () => {
    end()
    status.className = 'error'
    status.textContent = 'Upload failed: the connection to berth broke.'
  })
  xhr.addEventListener('abort', () => {
    end()
    status.className = 'error'
    status.textContent = 'Upload cancelled; berth keeps nothing of it.'
  })
  status.className = ''
  xhr.open('POST', appPath(app, '/releases'))
  xhr.setRequestHeader('authorization', `Bearer ${state.token}`)
  xhr.setRequestHeader('accept', 'application/json')
  // A raw body: berth reads any content type but multipart as the tarball itself.
  xhr.setRequestHeader('content-type', 'application/octet-stream')
  xhr.send(file)
}
