/**
 * A small in-memory SSM parameter store behind the mocked SSMClient: GetParameter, PutParameter
 * (with Overwrite and versions), DeleteParameter, DescribeParameters. Enough for the handlers'
 * plan record and the key parameter to behave as in AWS across several handler calls.
 */
import {
  DeleteParameterCommand,
  DescribeParametersCommand,
  GetParameterCommand,
  ParameterAlreadyExists,
  ParameterNotFound,
  PutParameterCommand,
} from '@aws-sdk/client-ssm';
import { ssm } from './mocks';

export interface StoredParameter {
  name: string;
  type: string;
  value: string;
  version: number;
  keyId?: string;
}

export class ParamStore {
  public readonly params = new Map<string, StoredParameter>();

  /** Wires the store into the (already reset) SSM mock. */
  public install(): this {
    ssm.on(GetParameterCommand).callsFake((input: { Name: string }) => {
      const p = this.params.get(input.Name);
      if (!p) throw new ParameterNotFound({ message: `Parameter ${input.Name} not found`, $metadata: {} });
      return { Parameter: { Name: p.name, Type: p.type, Value: p.value, Version: p.version } };
    });
    ssm.on(PutParameterCommand).callsFake((input: { Name: string; Value: string; Type?: string; Overwrite?: boolean; KeyId?: string }) => {
      const old = this.params.get(input.Name);
      if (old && !input.Overwrite) {
        throw new ParameterAlreadyExists({ message: `Parameter ${input.Name} exists`, $metadata: {} });
      }
      const version = (old?.version ?? 0) + 1;
      this.params.set(input.Name, { name: input.Name, type: input.Type ?? old?.type ?? 'String', value: input.Value, version, keyId: input.KeyId });
      return { Version: version, Tier: 'Standard' };
    });
    ssm.on(DeleteParameterCommand).callsFake((input: { Name: string }) => {
      if (!this.params.delete(input.Name)) {
        throw new ParameterNotFound({ message: `Parameter ${input.Name} not found`, $metadata: {} });
      }
      return {};
    });
    ssm.on(DescribeParametersCommand).callsFake((input: { ParameterFilters?: Array<{ Key: string; Values?: string[] }> }) => {
      const names = input.ParameterFilters?.find((f) => f.Key === 'Name')?.Values ?? [...this.params.keys()];
      return {
        Parameters: names.filter((n) => this.params.has(n)).map((n) => {
          const p = this.params.get(n) as StoredParameter;
          return { Name: p.name, Type: p.type, Version: p.version };
        }),
      };
    });
    return this;
  }

  public putJson(name: string, value: unknown): void {
    const old = this.params.get(name);
    this.params.set(name, { name, type: 'String', value: JSON.stringify(value), version: (old?.version ?? 0) + 1 });
  }
}
