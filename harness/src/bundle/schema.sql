-- Result bundle schema. docs/bundle.md documents every column; keep them in step.
-- Times ending in _ns are nanoseconds since the experiment's start on the
-- client's monotonic clock. Durations in summaries are milliseconds.
CREATE TABLE IF NOT EXISTS meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id            VARCHAR PRIMARY KEY,
    harness_version   VARCHAR NOT NULL,
    git_revision      VARCHAR NOT NULL,
    started_at        TIMESTAMPTZ NOT NULL,
    ended_at          TIMESTAMPTZ,
    status            VARCHAR NOT NULL,
    config_file       VARCHAR NOT NULL,
    config_name       VARCHAR NOT NULL,
    config_yaml       VARCHAR NOT NULL,
    overrides         VARCHAR NOT NULL,
    command_line      VARCHAR NOT NULL,
    host_name         VARCHAR,
    host_os           VARCHAR,
    host_arch         VARCHAR,
    host_cpus         INTEGER,
    host_memory_bytes BIGINT,
    duckdb_version    VARCHAR,
    status_reason     VARCHAR,
    host_gpus         VARCHAR
);
CREATE TABLE IF NOT EXISTS experiments (
    experiment_id  VARCHAR PRIMARY KEY,
    run_id         VARCHAR NOT NULL,
    ordinal        INTEGER NOT NULL,
    label          VARCHAR NOT NULL,
    endpoint       VARCHAR NOT NULL,
    provider       VARCHAR NOT NULL,
    model          VARCHAR NOT NULL,
    api            VARCHAR NOT NULL,
    stream         BOOLEAN NOT NULL,
    instance_type  VARCHAR,
    instance_count INTEGER NOT NULL,
    serving_stack  VARCHAR,
    dataset        VARCHAR NOT NULL,
    bucket         VARCHAR NOT NULL,
    tokenizer_id   VARCHAR NOT NULL,
    tokenizer_sha256 VARCHAR NOT NULL,
    load_mode      VARCHAR NOT NULL,
    concurrency    INTEGER,
    rate           DOUBLE,
    arrival        VARCHAR,
    hash_inputs    VARCHAR NOT NULL,
    simulated      BOOLEAN NOT NULL,
    sim_profile    VARCHAR,
    status         VARCHAR NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL,
    ended_at       TIMESTAMPTZ NOT NULL,
    status_reason  VARCHAR,
    search_id      VARCHAR,
    stopped_early  VARCHAR
);
CREATE TABLE IF NOT EXISTS server_metrics (
    experiment_id VARCHAR NOT NULL,
    t_ns          BIGINT NOT NULL,
    name          VARCHAR NOT NULL,
    labels        VARCHAR NOT NULL,
    value         DOUBLE
);
CREATE TABLE IF NOT EXISTS server_scrapes (
    experiment_id VARCHAR PRIMARY KEY,
    url           VARCHAR NOT NULL,
    interval_s    DOUBLE NOT NULL,
    attempts      BIGINT NOT NULL,
    failures      BIGINT NOT NULL,
    last_error    VARCHAR
);
CREATE TABLE IF NOT EXISTS searches (
    search_id  VARCHAR PRIMARY KEY,
    run_id     VARCHAR NOT NULL,
    label      VARCHAR NOT NULL,
    endpoint   VARCHAR NOT NULL,
    dataset    VARCHAR NOT NULL,
    bucket     VARCHAR NOT NULL,
    settings   VARCHAR NOT NULL,
    budget     VARCHAR NOT NULL,
    found      VARCHAR,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    experiment_id        VARCHAR NOT NULL,
    seq                  BIGINT NOT NULL,
    warmup               BOOLEAN NOT NULL,
    scheduled_ns         BIGINT NOT NULL,
    sent_ns              BIGINT NOT NULL,
    first_byte_ns        BIGINT,
    first_token_ns       BIGINT,
    end_ns               BIGINT NOT NULL,
    token_chunk_ns       BIGINT[] NOT NULL,
    events               INTEGER NOT NULL,
    http_status          SMALLINT,
    status               VARCHAR NOT NULL,
    error_class          VARCHAR,
    error_message        VARCHAR,
    prompt_tokens_client BIGINT,
    output_tokens_client BIGINT,
    prompt_tokens_usage  BIGINT,
    output_tokens_usage  BIGINT,
    prompt_token_discrepancy BIGINT,
    finish_reason        VARCHAR,
    simulated            BOOLEAN NOT NULL,
    retries              INTEGER NOT NULL DEFAULT 0,
    shard                INTEGER
);
-- One row per shard of an experiment run with `harness run --shard K/N`
-- (none for an experiment run whole); a merged experiment has all N.
CREATE TABLE IF NOT EXISTS shards (
    experiment_id         VARCHAR NOT NULL,
    shard                 INTEGER NOT NULL,
    shards                INTEGER NOT NULL,
    run_id                VARCHAR NOT NULL,
    host_name             VARCHAR,
    status                VARCHAR NOT NULL,
    split                 VARCHAR NOT NULL,
    start_unix_ns         BIGINT NOT NULL,
    start_late_ns         BIGINT NOT NULL,
    clock_source          VARCHAR NOT NULL,
    clock_offset_ns       BIGINT,
    clock_offset_error_ns BIGINT,
    PRIMARY KEY (experiment_id, shard)
);
CREATE TABLE IF NOT EXISTS summaries (
    experiment_id             VARCHAR PRIMARY KEY,
    requests                  BIGINT NOT NULL,
    requests_ok               BIGINT NOT NULL,
    requests_failed           BIGINT NOT NULL,
    warmup_requests           BIGINT NOT NULL,
    window_s                  DOUBLE NOT NULL,
    request_throughput        DOUBLE NOT NULL,
    output_token_throughput   DOUBLE NOT NULL,
    prompt_token_throughput   DOUBLE NOT NULL,
    send_rate                 DOUBLE,
    error_rate                DOUBLE NOT NULL,
    errors_by_class           VARCHAR NOT NULL,
    prompt_token_discrepancy  DOUBLE,
    output_token_discrepancy  DOUBLE,
    token_mismatch            BOOLEAN NOT NULL,
    usd_per_hour              DOUBLE,
    usd_per_request           DOUBLE,
    usd_per_10k_requests      DOUBLE,
    usd_per_1m_output_tokens  DOUBLE,
    usd_run                   DOUBLE,
    simulated                 BOOLEAN NOT NULL,
    prompt_tokens_total       BIGINT NOT NULL,
    output_tokens_total       BIGINT NOT NULL,
    prompt_tokens_all         BIGINT NOT NULL,
    output_tokens_all         BIGINT NOT NULL,
    run_s                     DOUBLE NOT NULL,
    price_mode                VARCHAR,
    price_usd_per_instance_hour DOUBLE,
    price_input_per_1m        DOUBLE,
    price_output_per_1m       DOUBLE,
    price_source              VARCHAR,
    price_region              VARCHAR,
    price_as_of               VARCHAR
);
CREATE TABLE IF NOT EXISTS distributions (
    experiment_id VARCHAR NOT NULL,
    metric        VARCHAR NOT NULL,
    unit          VARCHAR NOT NULL,
    count         BIGINT NOT NULL,
    mean          DOUBLE,
    min           DOUBLE,
    p50           DOUBLE,
    p90           DOUBLE,
    p95           DOUBLE,
    p99           DOUBLE,
    max           DOUBLE,
    PRIMARY KEY (experiment_id, metric)
);
CREATE TABLE IF NOT EXISTS ecdf (
    experiment_id VARCHAR NOT NULL,
    metric        VARCHAR NOT NULL,
    v             DOUBLE NOT NULL,
    c             BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS host_samples (
    experiment_id       VARCHAR NOT NULL,
    load_window         VARCHAR NOT NULL,
    t_ns                BIGINT NOT NULL,
    cpu_util_pct        DOUBLE,
    mem_used_bytes      BIGINT,
    mem_total_bytes     BIGINT,
    gpu_index           BIGINT,
    gpu_util_pct        DOUBLE,
    gpu_mem_used_bytes  BIGINT,
    gpu_mem_total_bytes BIGINT,
    gpu_power_w         DOUBLE,
    proc_rss_bytes      BIGINT
);
CREATE TABLE IF NOT EXISTS datasets (
    dataset          VARCHAR NOT NULL,
    tokenizer_sha256 VARCHAR NOT NULL,
    tokenizer_id     VARCHAR NOT NULL,
    kind             VARCHAR NOT NULL,
    path             VARCHAR,
    content_sha256   VARCHAR NOT NULL,
    template         VARCHAR,
    bucket_edges     VARCHAR,
    rows_total       BIGINT NOT NULL,
    rows_dropped     BIGINT NOT NULL,
    rows_per_bucket  VARCHAR NOT NULL,
    spec             VARCHAR NOT NULL,
    PRIMARY KEY (dataset, tokenizer_sha256)
);
CREATE TABLE IF NOT EXISTS dataset_rows (
    dataset          VARCHAR NOT NULL,
    tokenizer_sha256 VARCHAR NOT NULL,
    bucket           VARCHAR NOT NULL,
    line             BIGINT NOT NULL,
    prompt           VARCHAR NOT NULL,
    prompt_tokens    BIGINT NOT NULL,
    answers          VARCHAR
);
CREATE TABLE IF NOT EXISTS preflights (
    run_id       VARCHAR NOT NULL,
    endpoint     VARCHAR NOT NULL,
    url          VARCHAR,
    checked_at   TIMESTAMPTZ NOT NULL,
    ok           BOOLEAN NOT NULL,
    http_status  SMALLINT,
    error_class  VARCHAR,
    message      VARCHAR NOT NULL,
    latency_ms   DOUBLE,
    PRIMARY KEY (run_id, endpoint)
);
-- One row per launched instance (EC2), with its phases' times and logs.
CREATE TABLE IF NOT EXISTS deployments (
    run_id          VARCHAR NOT NULL,
    endpoint        VARCHAR NOT NULL,
    kind            VARCHAR NOT NULL,
    region          VARCHAR,
    instance_id     VARCHAR,
    instance_type   VARCHAR,
    market          VARCHAR,
    ami             VARCHAR,
    image           VARCHAR,
    image_digest    VARCHAR,
    agent_run_id    VARCHAR,
    launched_at     TIMESTAMPTZ,
    ready_at        TIMESTAMPTZ,
    benchmarked_at  TIMESTAMPTZ,
    collected_at    TIMESTAMPTZ,
    terminated_at   TIMESTAMPTZ,
    usd_per_hour    DOUBLE,
    cost_usd        DOUBLE,
    experiments_completed INTEGER NOT NULL,
    experiments_missing   INTEGER NOT NULL,
    status          VARCHAR NOT NULL,
    status_reason   VARCHAR,
    agent_log       VARCHAR,
    serving_log     VARCHAR,
    PRIMARY KEY (run_id, endpoint)
);
-- Command experiments (endpoints with provider `command`): one row per cell
-- of a command's scenario matrix, its runs, their metrics and calibrated GPU
-- memory. A cell's host samples are in host_samples under its cell_id, on the
-- cell's clock (ns since the cell started), where command_runs places each run.
CREATE TABLE IF NOT EXISTS command_cells (
    cell_id        VARCHAR PRIMARY KEY,
    run_id         VARCHAR NOT NULL,
    ordinal        INTEGER NOT NULL,
    label          VARCHAR NOT NULL,
    endpoint       VARCHAR NOT NULL,
    scenario       VARCHAR NOT NULL,
    args           VARCHAR NOT NULL,
    argv           VARCHAR NOT NULL,
    hash_inputs    VARCHAR NOT NULL,
    instance_type  VARCHAR,
    instance_count INTEGER NOT NULL,
    warmup_runs    INTEGER NOT NULL,
    runs           INTEGER NOT NULL,
    usd_per_hour   DOUBLE,
    price_source   VARCHAR,
    status         VARCHAR NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL,
    ended_at       TIMESTAMPTZ,
    status_reason  VARCHAR
);
CREATE TABLE IF NOT EXISTS command_runs (
    cell_id            VARCHAR NOT NULL,
    run                INTEGER NOT NULL,
    warmup             BOOLEAN NOT NULL,
    started_ns         BIGINT NOT NULL,
    ended_ns           BIGINT NOT NULL,
    exit_code          INTEGER,
    status             VARCHAR NOT NULL,
    error              VARCHAR,
    stdout_tail        VARCHAR NOT NULL,
    stderr_tail        VARCHAR NOT NULL,
    peak_rss_bytes     BIGINT,
    gpu_mem_peak_bytes DOUBLE,
    usd                DOUBLE,
    tokens             DOUBLE,
    usd_per_1m_tokens  DOUBLE,
    PRIMARY KEY (cell_id, run)
);
CREATE TABLE IF NOT EXISTS command_metrics (
    cell_id VARCHAR NOT NULL,
    run     INTEGER NOT NULL,
    metric  VARCHAR NOT NULL,
    unit    VARCHAR NOT NULL,
    idx     INTEGER NOT NULL,
    value   DOUBLE NOT NULL
);
CREATE TABLE IF NOT EXISTS command_gpu_memory (
    cell_id        VARCHAR NOT NULL,
    run            INTEGER NOT NULL,
    gpu_index      BIGINT NOT NULL,
    baseline_bytes BIGINT NOT NULL,
    peak_bytes     BIGINT NOT NULL,
    PRIMARY KEY (cell_id, run, gpu_index)
);
