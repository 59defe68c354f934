"""Webhooks: users' subscriptions, the delivery rows their events create, and the signed outbound POST.

Import from the module that owns a name: `destinations` (the address policy), `subscriptions` (the API
handlers), `delivery` (queue, claim, attempt, record). Nothing is re-exported here, so a test that
monkeypatches a name patches the one module that uses it.
"""
