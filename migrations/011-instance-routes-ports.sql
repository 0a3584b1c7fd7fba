-- Slot state has one owner (src/instances/): what each proxied app's haproxy sends new connections to, and
-- the private port each instance slot was given, from BERTH_INSTANCE_PORTS, so that berth never hands one
-- port out twice. Both were kept elsewhere before: the route in apps/APP/proxy/state.json, the port nowhere.

-- The slot the proxy routes to: written before each switch, read when a haproxy is (re)started.
CREATE TABLE routes (
  app   TEXT PRIMARY KEY REFERENCES apps(name),
  slot  TEXT NOT NULL,                   -- a | b
  port  INTEGER NOT NULL
);

-- A slot keeps its port across deploys and restarts; a port is another slot's never (UNIQUE).
CREATE TABLE instance_ports (
  app   TEXT NOT NULL REFERENCES apps(name),
  slot  TEXT NOT NULL,                   -- a | b
  port  INTEGER NOT NULL UNIQUE,
  PRIMARY KEY (app, slot)
);

-- A berth from before this routed to the instance its nodes row names (it wrote both with each switch),
-- and the ports its instances run on are taken until they stop.
INSERT INTO routes (app, slot, port) SELECT app, slot, port FROM nodes WHERE slot IS NOT NULL AND port IS NOT NULL;
INSERT OR IGNORE INTO instance_ports (app, slot, port) SELECT app, slot, port FROM nodes WHERE slot IS NOT NULL AND port IS NOT NULL;
INSERT OR IGNORE INTO instance_ports (app, slot, port) SELECT app, slot, port FROM instances;
