"""``powermeter proxy``: the carbon-aware reverse proxy (:mod:`.app`), the lean keep-alive HTTP/1.1
upstream client it and the AI gateway use (:mod:`.upstream`), the lean HTTP/1.1 server the gateway runs on
(:mod:`.server`), their shared ASGI plumbing (:mod:`.asgi`) and the command (:mod:`.commands`). The routing
decision itself lives in :mod:`powermeter.methodology.routing`, the grid data in
:mod:`powermeter.routing.providers`."""
