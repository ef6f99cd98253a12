/** Well-formed ids used across the security tests (no mocks here: safe to import anywhere). */
export const GOOD_INSTANCE = 'i-0123456789abcdef0';
export const GOOD_EXECUTION = '0f4ab1c2-3d4e-4f50-8a6b-7c8d9e0f1a2b';
export const GOOD_VOLUME = 'vol-0aaaaaaaaaaaaaaa1';
export const GOOD_SUBNET = 'subnet-0bbbbbbbbbbbbbbb2';
export const GOOD_VPC = 'vpc-0ccccccccccccccc3';
export const HELPER_INSTANCE = 'i-0ddddddddddddddd4';
