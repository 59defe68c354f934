"""Every deploy manifest, derived from the catalog, and the small deploy helpers CI and the scripts call.

One module per kind of resource (knative, eventing, gateway, dapr, rbac), the YAML writer, the files they make
(files), the CI and script helpers (ci) and the command line (__main__: `python -m todo_backend.deploy`).
Only the catalog and the standard library are imported at module level, so the deploy helpers run from a
bare checkout (PYTHONPATH=shared).
"""
