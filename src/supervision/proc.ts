// The process primitives' old address, kept because tests import it from here; they live in process/proc.ts.
// Nothing in src imports this file: src uses process/ directly.
export * from '../process/proc.js'
