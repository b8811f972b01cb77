// Owns what an ECR registry host name says: its account, region, partition and whether it is a FIPS
// endpoint, and what an IAM role ARN looks like. The config validates against these, and the
// refresher asks ECR in the region (and partition) the host names. Pure.

export type Partition = 'aws' | 'aws-cn' | 'aws-us-gov';

export interface EcrRegistry {
  /** The host as written in a docker config (lower case, no scheme). */
  host: string;
  account: string;
  region: string;
  partition: Partition;
  /** `<account>.dkr.ecr-fips.<region>.amazonaws.com`: ask ECR through its FIPS endpoint too. */
  fips: boolean;
}

// <account>.dkr.ecr.<region>.amazonaws.com, .amazonaws.com.cn in China, dkr.ecr-fips for FIPS.
const ECR_HOST = /^(\d{12})\.dkr\.(ecr|ecr-fips)\.([a-z]{2}(?:-[a-z]+)+-\d{1,2})\.amazonaws\.com(\.cn)?$/;
const ROLE_ARN = /^arn:(aws|aws-cn|aws-us-gov):iam::(\d{12}):role\/[\w+=,.@/-]{1,512}$/;

export const REGISTRY_HOST_EXAMPLE = '123456789012.dkr.ecr.us-east-1.amazonaws.com';

/** The registry a host names, or undefined when it is not an ECR registry host. */
export function parseRegistryHost(text: string): EcrRegistry | undefined {
  const host = text.trim().toLowerCase();
  const match = ECR_HOST.exec(host);
  if (!match) return undefined;
  const [, account, endpoint, region, china] = match as unknown as [string, string, string, string, string | undefined];
  const chinaRegion = region.startsWith('cn-');
  if (chinaRegion !== (china !== undefined)) return undefined; // cn-* lives under .amazonaws.com.cn only
  const fips = endpoint === 'ecr-fips';
  if (fips && chinaRegion) return undefined; // no FIPS endpoints in China
  const partition: Partition = chinaRegion ? 'aws-cn' : region.startsWith('us-gov-') ? 'aws-us-gov' : 'aws';
  return { host, account, region, partition, fips };
}

/** The partition of an IAM role ARN, or undefined when it is not one. */
export function roleArnPartition(arn: string): Partition | undefined {
  return ROLE_ARN.exec(arn)?.[1] as Partition | undefined;
}
