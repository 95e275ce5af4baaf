-- A token may say what its completions' output must fit: a JSON Schema (draft 2020-12), as
-- JSON text, given at create. NULL takes any output.
ALTER TABLE waitpoints ADD COLUMN output_schema TEXT;
