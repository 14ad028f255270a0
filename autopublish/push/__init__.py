"""Push: turn a WordPress ping, a WebSub delivery or an authenticated hook into an immediate
poll of a configured feed, never a fetch of any other URL.

listener.py   the small HTTP server ([push] listen): POST /ping, /websub/<feed>, POST /poll/<feed>
xmlrpc.py     weblogUpdates.ping / extendedPing requests and answers (hostile XML, parsed defused)
trigger.py    coalesces push requests into at most one extra poll per feed every few seconds
websub.py     the W3C WebSub subscriber: subscribe, verify intent, check signatures, renew, unsubscribe
service.py    wires them to the daemon; status.py says per feed whether it is pushed or polled
"""
