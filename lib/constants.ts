/**
 * Names the CDK app shares with the Lambdas and the runbook (docs/architecture.md). The tag
 * names come from the Lambdas' own definition; the IAM conditions key on them.
 */
import { KEY_PATH, LOCK_PATH } from '../lambdas/common/names';
import { MANAGED_BY_KEY, MANAGED_BY_VALUE, ROLE_KEY, type ResourceRole } from '../lambdas/common/tags';

/*
 * The tags are defined once, in lambdas/common/tags.ts, where the Lambdas write them: the IAM
 * conditions here must name exactly what the Lambdas put on the resources they create.
 */
/** Tag key every resource the runbook creates carries (IAM conditions key on it). */
export const MANAGED_BY_TAG_KEY = MANAGED_BY_KEY;
/** The value of {@link MANAGED_BY_TAG_KEY}. */
export const MANAGED_BY_TAG_VALUE = MANAGED_BY_VALUE;
/** Tag key naming what a created resource is for (`helper`, `vpc`, ...). */
export const ROLE_TAG_KEY = ROLE_KEY;
/** The value of {@link ROLE_TAG_KEY} on the helper instance. */
export const HELPER_ROLE_TAG_VALUE: ResourceRole = 'helper';

/** SSM parameter path (without the leading slash) of the plan record / lock, as the Lambdas name it. */
export const LOCK_PARAMETER_PATH = LOCK_PATH;
/** SSM parameter path (without the leading slash) of the generated private keys, as the Lambdas name it. */
export const KEY_PARAMETER_PATH = KEY_PATH;
/** Public SSM parameter the helper's AMI is read from; launch-helper appends the architecture. */
export const HELPER_AMI_PARAMETER_PREFIX = '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-';

/**
 * The public parameter of the helper's AMI for a Windows target (issue 15): Ubuntu Server 24.04
 * LTS, published by Canonical (`{arch}`: amd64 or arm64). Amazon Linux 2023 has no NTFS; Ubuntu
 * ships the SSM Agent (https://docs.aws.amazon.com/systems-manager/latest/userguide/agent-install-ubuntu-64-snap.html);
 * the parameter path is Canonical's (https://discourse.ubuntu.com/t/finding-ubuntu-images-with-the-aws-ssm-parameter-store/15507).
 * That the image ships ntfs-3g is an assumption (local/README.md): the script fails closed without it.
 */
export const WINDOWS_HELPER_AMI_PARAMETER = '/aws/service/canonical/ubuntu/server/24.04/stable/current/{arch}/hvm/ebs-gp3/ami-id';
/** The public parameter path (no leading slash) of every Windows helper AMI, for IAM. */
export const WINDOWS_HELPER_AMI_PATH = 'aws/service/canonical/ubuntu/server/24.04/stable/current';
/** The AWS account that publishes Ubuntu's AMIs (Canonical), the owner of the Windows helper's image. */
export const CANONICAL_ACCOUNT_ID = '099720109477';

/** Default names, overridable by the context keys `stackName` and `documentName`. */
export const DEFAULT_STACK_NAME = 'ResetAccessStack';
export const DEFAULT_DOCUMENT_NAME = 'ResetAccess';
/** The RevokeKey fleet runbook's default name (context `revokeDocumentName`). */
export const DEFAULT_REVOKE_DOCUMENT_NAME = 'RevokeKey';
/** The per-instance runbook is `<revokeDocumentName><suffix>`, the revoke Command document `<revokeDocumentName><suffix>`. */
export const REVOKE_INSTANCE_DOCUMENT_SUFFIX = '-Instance';
export const REVOKE_COMMAND_DOCUMENT_SUFFIX = '-Command';
/** The Command document is named `<documentName><suffix>`. */
export const INJECT_DOCUMENT_SUFFIX = '-InjectKey';
/** The windows-reset Command document is named `<documentName><suffix>` (issue 15). */
export const WINDOWS_DOCUMENT_SUFFIX = '-WindowsReset';

/** The Lambda folders of docs/architecture.md, in runbook order (the UserData method's last). */
export const STEP_FOLDERS = [
  'preflight',
  'stop-instance',
  'launch-helper',
  'backup-and-detach',
  'attach-to-helper',
  'inject-key',
  'release-from-helper',
  'reattach-root',
  'start-instance',
  'cleanup',
  'summarize',
  'restore',
  // Method=UserData (issue 12).
  'save-user-data',
  'set-user-data',
  'confirm-user-data',
  'restore-user-data',
  // RevokeKey (issue 14): the fleet's first and last steps, and the per-instance report.
  'revoke-resolve',
  'revoke-report',
  'revoke-gather',
  // Windows targets (issue 15).
  'windows-reset',
  'windows-release',
  'windows-start',
  'windows-password',
] as const;

/** One Lambda folder name. */
export type StepFolder = (typeof STEP_FOLDERS)[number];

/**
 * Lambda memory at which a function has the equivalent of one vCPU ("At 1,769 MB, a function has
 * the equivalent of one vCPU (one vCPU-second of credits per second)":
 * https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
 */
export const LAMBDA_MB_PER_VCPU = 1769;

/**
 * inject-key's memory (lib/functions.ts SIZING): one whole vCPU, so that its RSA 4096 generation,
 * single-threaded and CPU-bound, runs at full speed (more memory would add vCPU share that one
 * thread cannot use). The latency table scales the key generation from this figure (local/latency.ts).
 */
export const INJECT_KEY_MEMORY_MB = LAMBDA_MB_PER_VCPU;
