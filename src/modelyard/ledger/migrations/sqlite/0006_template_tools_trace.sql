-- 0006: prompt template, tool calls and trace id of each request (row schema version 4). See docs/ledger.md.
-- template_id / template_version: the template the client named (X-Modelyard-Template: name@version, or
-- metadata.template); tool_calls: tool calls in the answer (NULL where not counted); trace_id: the
-- OpenTelemetry trace id (32 hex digits) when tracing is on. Indexes for the `modelyard ledger` filters;
-- partial, so the rows without a template or trace (most, by default) cost nothing to index.

ALTER TABLE requests ADD COLUMN template_id TEXT;
ALTER TABLE requests ADD COLUMN template_version TEXT;
ALTER TABLE requests ADD COLUMN tool_calls INTEGER;
ALTER TABLE requests ADD COLUMN trace_id TEXT;
CREATE INDEX requests_template_ts ON requests (template_id, ts) WHERE template_id IS NOT NULL;
CREATE INDEX requests_trace_id ON requests (trace_id) WHERE trace_id IS NOT NULL;
