// The formats of the ids berth mints: releases, deployments, sessions, rollouts, tokens, webhooks and their
// deliveries, boots, and the owner id of an agent process. Users' scripts and the tests parse them: they never change.

import crypto from 'node:crypto'

function hex(bytes: number): string {
  return crypto.randomBytes(bytes).toString('hex')
}

/** UTC seconds as YYYYMMDDHHMMSS: ids that sort by time and say when they were made. */
function stamp(at: Date | string): string {
  return (typeof at === 'string' ? at : at.toISOString()).replace(/[-:.TZ]/g, '').slice(0, 14)
}

/**
 * A deployment (deploy, rollback, start, stop, restart), e.g. 20260101120000-3fa9c1. `at` is an ISO time
 * for one recorded again from disk (intake/reimport.ts), which keeps the time it happened.
 */
export function deploymentId(at: Date | string = new Date()): string {
  return `${stamp(at)}-${hex(3)}`
}

/**
 * A release: its version and the first 12 hex digits of its tarball's sha256, readable and unique per content
 * (e.g. 0.2.0-3f2a9c1be4d0); paths.ts RELEASE_ID is the pattern that checks it.
 */
export function releaseId(version: string, sha256: string): string {
  return `${version}-${sha256.slice(0, 12)}`
}

/** A console session: the same shape as a deployment's, since both name a recorded event in time. */
export function sessionId(at: Date = new Date()): string {
  return `${stamp(at)}-${hex(3)}`
}

/** A fleet rollout, e.g. r-20260101120000-3fa9c1: the prefix tells it from a deployment id in a listing. */
export function rolloutId(at: Date = new Date()): string {
  return `r-${stamp(at)}-${hex(3)}`
}

/** A token's public id (its name is what people use; the id is what the hash row and the watch key on). */
export function tokenId(): string {
  return hex(8)
}

/** A registered webhook. */
export function webhookId(): string {
  return hex(6)
}

/** One webhook delivery; the receiver sees it in the payload and may use it to drop a redelivery. */
export function deliveryId(): string {
  return hex(8)
}

/** One boot of a node: tells apart the records of two boots of the same release. */
export function bootId(): string {
  return hex(6)
}

/** This agent process as the owner of locks (`prefix-` for another tool's own, such as `berth import`). */
export function ownerId(prefix = ''): string {
  return `${prefix}${process.pid}-${hex(6)}`
}
