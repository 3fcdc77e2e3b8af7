"""The sandbox worker process, one module per role: ``serve`` (the serve loop and entry
script), ``child`` (the forked child that runs one program), ``setup`` with ``namespaces``
and ``seccomp`` (entering the sandbox), ``frames`` (the child -> worker reply frames),
``fs`` (work directories), ``reuse`` with ``state`` (the reused child of
``isolation="reuse"`` and the closed rule that decides whether it stays), ``messages`` (the pool <-> worker
codec).

It runs as a script from a copy of this folder under ``python -S`` (stdlib only): its
modules load each other by path (``serve._import_sibling``), never through this package,
and import nothing of azr_jax (tests/test_architecture.py checks both).
"""
