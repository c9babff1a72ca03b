-- Installs the user on a computer asked for (an available install), and when they were answered.
CREATE TABLE install_requests (
    request_id   bigserial   PRIMARY KEY,
    computer_id  text        NOT NULL,
    update_id    uuid        NOT NULL,
    requested_at timestamptz NOT NULL,
    answered_at  timestamptz NOT NULL
);
CREATE INDEX install_requests_computer ON install_requests (computer_id, requested_at);
