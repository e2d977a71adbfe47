-- Distances, their operators, and the vector functions.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ruvector;
RESET client_min_messages;

-- l2_distance and <->
SELECT l2_distance('[0,0]', '[3,4]');
SELECT '[0,0]'::ruvector <-> '[3,4]';
SELECT '[1,2,3]'::ruvector <-> '[1,2,3]';
SELECT l2_distance('[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]', '[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]');
SELECT l2_distance('[3e38]', '[-3e38]');
SELECT l2_distance('[1,2]', '[3]');
SELECT '[1,2]'::ruvector <-> '[3]';
SELECT ruvector_l2_squared_distance('[0,0]', '[3,4]');

-- inner_product and <#> (the negative inner product)
SELECT inner_product('[1,2]', '[3,4]');
SELECT '[1,2]'::ruvector <#> '[3,4]';
SELECT inner_product('[1,-1]', '[1,1]');
SELECT inner_product('[3e38]', '[3e38]');
SELECT inner_product('[1,2]', '[3]');
SELECT '[1,2]'::ruvector <#> '[3]';

-- cosine_distance and <=>: 0 same direction, 1 orthogonal, 2 opposite,
-- NaN when either is the zero vector
SELECT cosine_distance('[1,2]', '[2,4]');
SELECT cosine_distance('[1,2]', '[0,0]');
SELECT cosine_distance('[0,0]', '[0,0]');
SELECT cosine_distance('[1,1]', '[1,1]');
SELECT cosine_distance('[1,0]', '[0,2]');
SELECT cosine_distance('[1,1]', '[-1,-1]');
SELECT round(cosine_distance('[1,2,3]', '[4,5,6]')::numeric, 6);
SELECT '[1,2]'::ruvector <=> '[2,4]';
SELECT '[1,0]'::ruvector <=> '[-3,0]';
SELECT cosine_distance('[1,2]', '[3]');
SELECT '[1,2]'::ruvector <=> '[3]';

-- l1_distance and <+>
SELECT l1_distance('[0,0]', '[3,4]');
SELECT '[0,0]'::ruvector <+> '[3,4]';
SELECT '[1,-2,3]'::ruvector <+> '[-1,2,-3]';
SELECT l1_distance('[3e38]', '[-3e38]');
SELECT l1_distance('[1,2]', '[3]');
SELECT '[1,2]'::ruvector <+> '[3]';

-- the kernels give the same distances as plain SQL over the elements,
-- across lengths that exercise the vector bodies and their tails
SELECT n,
	abs((('[' || array_to_string(a, ',') || ']')::ruvector <-> ('[' || array_to_string(b, ',') || ']')::ruvector)
	    - sqrt((SELECT sum((x - y) ^ 2) FROM unnest(a, b) u(x, y)))) < 1e-3 AS l2_ok,
	abs(inner_product(('[' || array_to_string(a, ',') || ']')::ruvector, ('[' || array_to_string(b, ',') || ']')::ruvector)
	    - (SELECT sum(x * y) FROM unnest(a, b) u(x, y))) < 1e-3 AS ip_ok
FROM (
	SELECT n,
		array(SELECT ((i * 7) % 11 - 5)::float8 / 4 FROM generate_series(1, n) i) AS a,
		array(SELECT ((i * 5) % 13 - 6)::float8 / 8 FROM generate_series(1, n) i) AS b
	FROM unnest(ARRAY[1, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 1000]) n
) s ORDER BY n;

-- NULL in, NULL out
SELECT l2_distance(NULL, '[1]'), '[1]'::ruvector <=> NULL, vector_dims(NULL);

-- vector_dims, vector_norm
SELECT vector_dims('[1,2,3]');
SELECT vector_dims('[1,2,3]'::ruvector(3));
SELECT vector_norm('[3,4]');
SELECT vector_norm('[0,0,0]');
SELECT vector_norm('[1,1,1,1]');
SELECT vector_norm('[3e38,3e38]');

-- l2_normalize: unit length, and the zero vector stays zero
SELECT l2_normalize('[3,4]');
SELECT l2_normalize('[3,0,4]');
SELECT l2_normalize('[0,0]');
SELECT l2_normalize('[-5]');
SELECT l2_normalize('[3e38,3e38]');
SELECT l2_normalize('[1e-45,0]');
SELECT abs(vector_norm(l2_normalize('[1,2,3,4,5,6,7]')) - 1) < 1e-6;

-- subvector(v, start, count): 1-based like substring, clipped to the vector
SELECT subvector('[1,2,3,4,5]', 1, 3);
SELECT subvector('[1,2,3,4,5]', 3, 2);
SELECT subvector('[1,2,3,4,5]', 4, 10);
SELECT subvector('[1,2,3,4,5]', -1, 3);
SELECT subvector('[1,2,3,4,5]', 0, 1);
SELECT subvector('[1,2,3,4,5]', 5, 1);
SELECT subvector('[1,2,3,4,5]', 3, 2147483647);
SELECT subvector('[1,2,3,4,5]', -2147483644, 2147483647);
SELECT subvector('[1,2,3,4,5]', 6, 1);
SELECT subvector('[1,2,3,4,5]', 1, 0);
SELECT subvector('[1,2,3,4,5]', 3, -1);
SELECT subvector('[1,2,3,4,5]', -1, 2);

-- binary_quantize: one bit per element, set when positive
SELECT binary_quantize('[1,0,-1,2]');
SELECT binary_quantize('[1,-2,3,-4,5,-6,7,-8,9]');
SELECT binary_quantize('[0]');
SELECT pg_typeof(binary_quantize('[1]')), length(binary_quantize('[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]'));
