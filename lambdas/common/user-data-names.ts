/**
 * The SSM parameter path of the UserData method's saved original user data. No imports, so the
 * CDK app can grant exactly this path (lib/functions.ts) without loading the Lambdas' code.
 */

/** Path (no leading or trailing slash) of the saved original user data. */
export const USER_DATA_PATH = 'reset-access/user-data';

/** `/reset-access/user-data/<instance-id>`: the SecureString holding the original user data. */
export function userDataParameterName(instanceId: string): string {
  return `/${USER_DATA_PATH}/${instanceId}`;
}
