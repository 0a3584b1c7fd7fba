// Whether a loopback port can be listened on now: the one check berth makes before it gives a port to a
// node (distribution ports, instance ports), tried on that exact port.

import net from 'node:net'

/**
 * Tried on `port` itself: asking the kernel for any port (0) and closing it again is a race another program
 * wins. Exclusive (not shared with a cluster sibling), on loopback, where the node will listen.
 */
export function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer()
    srv.unref()
    srv.once('error', () => resolve(false))
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)))
  })
}
