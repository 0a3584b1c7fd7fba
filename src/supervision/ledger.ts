// The command ledger's old address, kept because tests import it from here; it lives in process/ledger.ts.
// Nothing in src imports this file: src uses process/ directly.
export * from '../process/ledger.js'
