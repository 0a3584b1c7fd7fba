// Instance node names: what the nodes of an app's slots are called, so that no two ever share one.
// Part of slot state (instances.ts); distribution.ts passes them on to the nodes it configures.

import type { Slot } from '../paths.js'

/**
 * An instance's node name. App names are valid node-name heads as they are (letters, digits, `_`, `-`) and
 * never contain "--" (paths.ts APP_NAME), so `APP--SLOT` can be no other app's name, nor another app's
 * instance's: two apps, or two slots of one, never share a node name.
 */
export function nodeName(app: string, slot: Slot | null): string {
  return slot ? `${app}--${slot}` : app
}
