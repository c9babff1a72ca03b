-- The probe service's one effect: a counter per key, incremented once per message handled.
CREATE TABLE counts (
    key text PRIMARY KEY,
    n   int  NOT NULL
);
