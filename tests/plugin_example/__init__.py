"""A third-party dreammake plugin, as a lab would write one: a rule kind, an LLM backend and an executor.

It changes nothing in dreammake. Installed, it declares its entry points in its package metadata (see
`ENTRY_POINTS`; in a pyproject.toml they are the `[project.entry-points."dreammake.…"]` tables), and then
`rules.number_rows(...)`, `llm("shout:NAME")` and `dreammake --executor audited` work in any project.
"""

ENTRY_POINTS = {
    "dreammake.rule_kinds": {"number_rows": "plugin_example.kind:number_rows"},
    "dreammake.backends": {"shout": "plugin_example.backend:ShoutBackend"},
    "dreammake.executors": {"audited": "plugin_example.executor:audited"},
}
