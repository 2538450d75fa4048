-- A random tag naming this deployment (one state database, and every node sharing it), made once.
-- What a deployment creates on a server other deployments may share carries it: the Redis
-- provider's ACL users are named sh_<tag>_<resource>, so its sweep of users no live record has
-- removes this deployment's own and never another's.
CREATE TABLE deployment (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  tag        text NOT NULL
);
INSERT INTO deployment (tag) VALUES (substr(replace(gen_random_uuid()::text, '-', ''), 1, 12));
