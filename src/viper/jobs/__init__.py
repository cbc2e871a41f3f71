"""The jobs: one file per thing a user runs (extract, extract on Ray, train, evaluate, predict, inspect, ablate,
submit, import features, demo). They import the engine below them and each other's entry points, never the
reverse; the CLI and `import viper` reach them lazily."""
