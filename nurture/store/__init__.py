"""The engine's database: engine, tables, read model, migrations, campaigns, rules status."""
