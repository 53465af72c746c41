-- A one-customer distinct-count sketch: 512 registers of 16 bits; bit k of
-- register r is set when a customer hashed into r has k trailing zero bits in
-- the rest of its hash (capped at 15). OR-ing sketches (bit_or) merges them;
-- the highest set bit of each register is a HyperLogLog register.
-- Estimated in router/aggregates.py. NULL for anonymous contacts. Written as
-- one expression so that the planner inlines it.
CREATE OR REPLACE FUNCTION customer_sketch(id uuid) RETURNS bit(8192)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT set_bit(
        repeat('0', 8192)::bit(8192),
        16 * (uuid_hash_extended(id, 0) & 511)::integer + 15
        - coalesce(round(ln(nullif(
              ((uuid_hash_extended(id, 0) >> 9) & 65535)
              & -((uuid_hash_extended(id, 0) >> 9) & 65535), 0)::double precision) / ln(2))::integer,
            15),
        1)
$$;
