"""Additions to moto's CloudFormation (moto 5.2.5), for the deploy and end-to-end tests.

Import this module in the *same process* as moto (ThreadedMotoServer or
mock_aws). It does two things:

1. Registers CloudFormationModel subclasses for resource types moto's
   CloudFormation engine does not know about.  moto discovers models through
   ``CloudFormationModel.__subclasses__()`` (direct subclasses only), cached with
   ``functools.lru_cache`` in ``moto.cloudformation.parsing``; so the classes
   below subclass CloudFormationModel directly and the caches are cleared after
   they are defined.

2. ``patch_change_sets()`` fixes the change-set execution path so that
   stacks created by CREATE change sets get Outputs, register their Exports,
   can use Fn::ImportValue, and failures are reported the way CloudFormation
   does (stack status *ROLLBACK_COMPLETE + a FAILED event) instead of an HTTP
   400 from ExecuteChangeSet; delete_stack failures become DELETE_FAILED; and
   a Modify of a type without moto update support keeps the old resource.

The module must be imported as part of a package (as foundation.local.moto_cfn):
moto's model metaclass reads the service name from ``cls.__module__.split(".")[1]``
and raises IndexError for a top-level module.
"""

from __future__ import annotations

import json
from typing import Any

from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing
from moto.core.common_models import CloudFormationModel
from moto.utilities.utils import get_partition


def _tags(props: dict[str, Any]) -> list[dict[str, str]]:
    return [t for t in props.get("Tags", []) if t]


# --------------------------------------------------------------------------
# AWS::SecretsManager::Secret
# --------------------------------------------------------------------------
class CfnSecret(CloudFormationModel):
    """Ref -> secret ARN; GetAtt Id -> ARN.  GenerateSecretString honoured."""

    def __init__(self, arn: str, name: str, account_id: str, region_name: str):
        self.arn = arn
        self.name = name
        self.account_id = account_id
        self.region_name = region_name

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SecretsManager::Secret"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Id",)

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name == "Id":
            return self.arn
        raise NotImplementedError(f'"Fn::GetAtt" : [ "{{0}}" , "{attribute_name}" ]')

    @staticmethod
    def _secret_string(props: dict[str, Any], account_id: str, region_name: str) -> str | None:
        from moto.secretsmanager.models import secretsmanager_backends

        if "SecretString" in props:
            return props["SecretString"]
        gen = props.get("GenerateSecretString")
        if gen is None:
            return None
        backend = secretsmanager_backends[account_id][region_name]
        password = json.loads(
            backend.get_random_password(
                password_length=int(gen.get("PasswordLength", 32)),
                exclude_characters=gen.get("ExcludeCharacters", ""),
                exclude_numbers=bool(gen.get("ExcludeNumbers", False)),
                exclude_punctuation=bool(gen.get("ExcludePunctuation", False)),
                exclude_uppercase=bool(gen.get("ExcludeUppercase", False)),
                exclude_lowercase=bool(gen.get("ExcludeLowercase", False)),
                include_space=bool(gen.get("IncludeSpace", False)),
                require_each_included_type=bool(gen.get("RequireEachIncludedType", True)),
            )
        )["RandomPassword"]
        if "SecretStringTemplate" in gen:
            doc = json.loads(gen["SecretStringTemplate"])
            doc[gen["GenerateStringKey"]] = password
            return json.dumps(doc)
        return password

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ) -> CfnSecret:
        from moto.secretsmanager.models import secretsmanager_backends

        props = cloudformation_json.get("Properties", {})
        backend = secretsmanager_backends[account_id][region_name]
        backend.create_secret(
            name=resource_name,
            secret_string=cls._secret_string(props, account_id, region_name),
            secret_binary=None,
            description=props.get("Description"),
            tags=_tags(props),
            kms_key_id=props.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        arn = backend.secrets[resource_name].arn
        return cls(arn, resource_name, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ) -> CfnSecret:
        # Keep the secret (and its value); replace only if the name changed.
        if original_resource.name == new_resource_name:
            return original_resource
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name
    ) -> None:
        from moto.secretsmanager.models import secretsmanager_backends

        secretsmanager_backends[account_id][region_name].delete_secret(resource_name, None, True)

    def delete(self, account_id: str, region_name: str) -> None:
        self.delete_from_cloudformation_json(self.arn, {}, account_id, region_name)

    def is_created(self) -> bool:
        return True


# --------------------------------------------------------------------------
# AWS::SecretsManager::SecretTargetAttachment
# --------------------------------------------------------------------------
class CfnSecretTargetAttachment(CloudFormationModel):
    """Ref -> the secret ARN (as in AWS). Adds host/port/engine for RDS targets."""

    def __init__(self, secret_arn: str):
        self.secret_arn = secret_arn

    @property
    def physical_resource_id(self) -> str:
        return self.secret_arn

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SecretsManager::SecretTargetAttachment"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ) -> CfnSecretTargetAttachment:
        from moto.rds.models import rds_backends
        from moto.secretsmanager.models import secretsmanager_backends

        props = cloudformation_json["Properties"]
        sm = secretsmanager_backends[account_id][region_name]
        secret = sm.get_secret_value(props["SecretId"], None, None)
        if props.get("TargetType") == "AWS::RDS::DBInstance":
            try:
                db = rds_backends[account_id][region_name].describe_db_instances(props["TargetId"])[
                    0
                ]
                value = json.loads(secret["SecretString"] or "{}")
                value.update(
                    engine=db.engine,
                    host=db.address,
                    port=db.port,
                    dbInstanceIdentifier=db.db_instance_identifier,
                )
                sm.put_secret_value(
                    props["SecretId"], json.dumps(value), None, None, ["AWSCURRENT"]
                )
            except Exception:  # best effort; attachment still "exists"
                pass
        return cls(secret["ARN"])

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    def delete(self, account_id: str, region_name: str) -> None:
        pass

    def is_created(self) -> bool:
        return True


# --------------------------------------------------------------------------
# AWS::EC2::SecurityGroupEgress
# --------------------------------------------------------------------------
class CfnSecurityGroupEgress(CloudFormationModel):
    """Ref -> security group rule id (sgr-...)."""

    def __init__(self, rule_id: str, group_id: str, rule_args: dict[str, Any]):
        self.rule_id = rule_id
        self.group_id = group_id
        self.rule_args = rule_args

    @property
    def physical_resource_id(self) -> str:
        return self.rule_id

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::EC2::SecurityGroupEgress"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Id"

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name == "Id":
            return self.rule_id
        raise NotImplementedError(f'"Fn::GetAtt" : [ "{{0}}" , "{attribute_name}" ]')

    @staticmethod
    def _rule_args(props: dict[str, Any]) -> dict[str, Any]:
        args: dict[str, Any] = {
            "ip_protocol": str(props["IpProtocol"]),
            "from_port": props.get("FromPort", -1),
            "to_port": props.get("ToPort", -1),
            "ip_ranges": [],
            "source_groups": [],
            "prefix_list_ids": [],
        }
        if "CidrIp" in props:
            args["ip_ranges"] = [
                {"CidrIp": props["CidrIp"], "Description": props.get("Description", "")}
            ]
        if "CidrIpv6" in props:
            args["ip_ranges"] = [
                {"CidrIpv6": props["CidrIpv6"], "Description": props.get("Description", "")}
            ]
        if "DestinationSecurityGroupId" in props:
            args["source_groups"] = [
                {
                    "GroupId": props["DestinationSecurityGroupId"],
                    "Description": props.get("Description", ""),
                }
            ]
        if "DestinationPrefixListId" in props:
            args["prefix_list_ids"] = [{"PrefixListId": props["DestinationPrefixListId"]}]
        return args

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ) -> CfnSecurityGroupEgress:
        from moto.ec2.models import ec2_backends

        props = cloudformation_json["Properties"]
        args = cls._rule_args(props)
        rules, _group = ec2_backends[account_id][region_name].authorize_security_group_egress(
            group_name_or_id=props["GroupId"], **args
        )
        return cls(rules[0].id, props["GroupId"], args)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.ec2.models import ec2_backends

        try:
            ec2_backends[account_id][region_name].revoke_security_group_egress(
                group_name_or_id=self.group_id, **self.rule_args
            )
        except Exception:  # group or peer group already gone: nothing to revoke
            pass

    def is_created(self) -> bool:
        return True


# --------------------------------------------------------------------------
# AWS::S3::BucketPolicy
# --------------------------------------------------------------------------
class CfnBucketPolicy(CloudFormationModel):
    """Ref -> bucket name.  NOTE: moto enforces Deny statements of bucket
    policies on object requests and ignores Conditions (see notes)."""

    def __init__(self, bucket: str):
        self.bucket = bucket

    @property
    def physical_resource_id(self) -> str:
        return self.bucket

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::S3::BucketPolicy"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    # False: keep the policy in CfnBucketPolicy.policies only.  moto ignores
    # Conditions when enforcing bucket policies, so CDK's enforceSSL statement
    # ("Deny s3:* if aws:SecureTransport=false") would 403 every object call.
    STORE_ON_BUCKET = False
    policies: dict[str, Any] = {}

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ) -> CfnBucketPolicy:
        from moto.s3.models import s3_backends

        props = cloudformation_json["Properties"]
        bucket = props["Bucket"]
        backend = s3_backends[account_id][get_partition(region_name)]
        backend.get_bucket(bucket)  # raises NoSuchBucket if missing
        cls.policies[bucket] = props["PolicyDocument"]
        if cls.STORE_ON_BUCKET:
            backend.put_bucket_policy(bucket, json.dumps(props["PolicyDocument"]).encode())
        return cls(bucket)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.s3.models import s3_backends

        self.policies.pop(self.bucket, None)
        try:
            s3_backends[account_id][get_partition(region_name)].delete_bucket_policy(self.bucket)
        except Exception:
            pass

    def is_created(self) -> bool:
        return True


# --------------------------------------------------------------------------
# AWS::SQS::QueuePolicy
# --------------------------------------------------------------------------
class CfnQueuePolicy(CloudFormationModel):
    """Ref -> the first queue's URL. The policy is set as each queue's `Policy` attribute, as
    SetQueueAttributes would; moto enforces none of it, moto_gaps.py evaluates its denies."""

    def __init__(self, urls: list[str], account_id: str, region_name: str):
        self.urls, self.account_id, self.region_name = urls, account_id, region_name

    @property
    def physical_resource_id(self) -> str:
        return self.urls[0]

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SQS::QueuePolicy"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    def _set(self, policy: str | None) -> None:
        from moto.sqs.models import sqs_backends

        backend = sqs_backends[self.account_id][self.region_name]
        for url in self.urls:
            backend.get_queue(url.rsplit("/", 1)[-1]).policy = policy

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ) -> CfnQueuePolicy:
        props = cloudformation_json["Properties"]
        made = cls(list(props["Queues"]), account_id, region_name)
        made._set(json.dumps(props["PolicyDocument"]))
        return made

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ) -> CfnQueuePolicy:
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.sqs.exceptions import QueueDoesNotExist

        try:
            self._set(None)
        except QueueDoesNotExist:  # deleted with its queue
            pass

    def is_created(self) -> bool:
        return True


# --------------------------------------------------------------------------
# AWS::ServiceDiscovery::PrivateDnsNamespace / Service
# --------------------------------------------------------------------------
class CfnPrivateDnsNamespace(CloudFormationModel):
    """Ref -> namespace id; GetAtt Id, Arn, HostedZoneId."""

    def __init__(self, ns: Any):
        self.ns = ns

    @property
    def physical_resource_id(self) -> str:
        return self.ns.id

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""  # Name is a required property, not a generated name

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ServiceDiscovery::PrivateDnsNamespace"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Id", "Arn", "HostedZoneId")

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name == "Id":
            return self.ns.id
        if attribute_name == "Arn":
            return self.ns.arn
        if attribute_name == "HostedZoneId":
            return self.ns.dns_properties.get("HostedZoneId")
        raise NotImplementedError(f'"Fn::GetAtt" : [ "{{0}}" , "{attribute_name}" ]')

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ) -> CfnPrivateDnsNamespace:
        from moto.servicediscovery.models import servicediscovery_backends

        props = cloudformation_json["Properties"]
        backend = servicediscovery_backends[account_id][region_name]
        op_id = backend.create_private_dns_namespace(
            name=props["Name"],
            creator_request_id=None,
            description=props.get("Description"),
            vpc=props["Vpc"],
            tags=_tags(props),
            properties=props.get("Properties"),
        )
        ns_id = backend.get_operation(op_id).targets["NAMESPACE"]
        return cls(backend.get_namespace(ns_id))

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.servicediscovery.models import servicediscovery_backends

        servicediscovery_backends[account_id][region_name].delete_namespace(self.ns.id)

    def is_created(self) -> bool:
        return True


class CfnDiscoveryService(CloudFormationModel):
    """Ref -> service id; GetAtt Id, Arn, Name."""

    def __init__(self, svc: Any):
        self.svc = svc

    @property
    def physical_resource_id(self) -> str:
        return self.svc.id

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ServiceDiscovery::Service"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Id", "Arn", "Name")

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name in ("Id", "Arn", "Name"):
            return getattr(self.svc, attribute_name.lower())
        raise NotImplementedError(f'"Fn::GetAtt" : [ "{{0}}" , "{attribute_name}" ]')

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ) -> CfnDiscoveryService:
        from moto.servicediscovery.models import servicediscovery_backends

        props = cloudformation_json["Properties"]
        svc = servicediscovery_backends[account_id][region_name].create_service(
            name=resource_name,
            namespace_id=props.get("NamespaceId") or props.get("DnsConfig", {}).get("NamespaceId"),
            creator_request_id=None,
            description=props.get("Description"),
            dns_config=props.get("DnsConfig"),
            health_check_config=props.get("HealthCheckConfig"),
            health_check_custom_config=props.get("HealthCheckCustomConfig"),
            tags=_tags(props),
            service_type=props.get("Type"),
        )
        return cls(svc)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.servicediscovery.models import servicediscovery_backends

        servicediscovery_backends[account_id][region_name].delete_service(self.svc.id)

    def is_created(self) -> bool:
        return True


# --------------------------------------------------------------------------
# Fixes for types moto has but gets wrong (override by registering a newer
# direct subclass with the same cloudformation_type: get_model_map() is a dict
# built in class-creation order, so the last one wins).
# --------------------------------------------------------------------------
from moto.iam.models import ManagedPolicy as _MotoManagedPolicy
from moto.iam.models import iam_backends
from moto.ssm.models import Parameter as _MotoSsmParameter


class CfnSsmParameter(CloudFormationModel):
    """AWS::SSM::Parameter: CloudFormation's Tags is a map; moto expects a list."""

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SSM::Parameter"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return _MotoSsmParameter.has_cfn_attr(attr)

    @staticmethod
    def _fix(cloudformation_json: dict[str, Any]) -> dict[str, Any]:
        props = dict(cloudformation_json.get("Properties", {}))
        if isinstance(props.get("Tags"), dict):
            props["Tags"] = [{"Key": k, "Value": v} for k, v in props["Tags"].items()]
        return {**cloudformation_json, "Properties": props}

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        return _MotoSsmParameter.create_from_cloudformation_json(
            resource_name, cls._fix(cloudformation_json), account_id, region_name, **kwargs
        )

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        return _MotoSsmParameter.update_from_cloudformation_json(
            original_resource,
            new_resource_name,
            cls._fix(cloudformation_json),
            account_id,
            region_name,
        )

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name
    ) -> None:
        _MotoSsmParameter.delete_from_cloudformation_json(
            resource_name, cloudformation_json, account_id, region_name
        )


class CfnManagedPolicy(CloudFormationModel):
    """AWS::IAM::ManagedPolicy: moto has no CFN delete/update for it, so a stack
    whose Role has a ManagedPolicy attached can never be deleted (DeleteConflict),
    and a Modify leaves the resource as None."""

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::IAM::ManagedPolicy"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return _MotoManagedPolicy.has_cfn_attr(attr)

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        return _MotoManagedPolicy.create_from_cloudformation_json(
            resource_name, cloudformation_json, account_id, region_name, **kwargs
        )

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        cls.delete_from_cloudformation_json(original_resource.arn, {}, account_id, region_name)
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name
    ) -> None:
        backend = iam_backends[account_id][get_partition(region_name)]
        arn = resource_name
        for role in backend.roles.values():
            if arn in role.managed_policies:
                backend.detach_role_policy(arn, role.name)
        for user in backend.users.values():
            if arn in user.managed_policies:
                backend.detach_user_policy(arn, user.name)
        for group in backend.groups.values():
            if arn in group.managed_policies:
                backend.detach_group_policy(arn, group.name)
        backend.delete_policy(arn)


def _delegating_model(moto_cls: type, delete_by_physical_id) -> type:
    """A CloudFormationModel with the same type as `moto_cls` that delegates
    create/update to it and adds a delete (given the physical resource id)."""

    class Wrapper(CloudFormationModel):
        @staticmethod
        def cloudformation_name_type() -> str:
            return moto_cls.cloudformation_name_type()

        @staticmethod
        def cloudformation_type() -> str:
            return moto_cls.cloudformation_type()

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return moto_cls.has_cfn_attr(attr)

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[misc]
            cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
        ):
            return moto_cls.create_from_cloudformation_json(
                resource_name, cloudformation_json, account_id, region_name, **kwargs
            )

        @classmethod
        def delete_from_cloudformation_json(  # type: ignore[misc]
            cls, resource_name, cloudformation_json, account_id, region_name
        ) -> None:
            delete_by_physical_id(account_id, region_name, resource_name)

    Wrapper.__name__ = Wrapper.__qualname__ = f"Cfn{moto_cls.__name__}WithDelete"
    return Wrapper


def _delete_route_table(account_id: str, region_name: str, rtb_id: str) -> None:
    from moto.ec2.models import ec2_backends

    ec2 = ec2_backends[account_id][region_name]
    rt = ec2.route_tables.get(rtb_id)
    if rt is None:
        return
    for assoc_id in list(rt._associations):
        ec2.disassociate_route_table(assoc_id)
    ec2.delete_route_table(rtb_id)


def _delete_nat_gateway(account_id: str, region_name: str, nat_id: str) -> None:
    from moto.ec2.models import ec2_backends

    ec2 = ec2_backends[account_id][region_name]
    if nat_id in ec2.nat_gateways:
        ec2.delete_nat_gateway(nat_id)


from moto.ec2.models.nat_gateways import NatGateway as _MotoNatGateway
from moto.ec2.models.route_tables import RouteTable as _MotoRouteTable

# moto's AWS::EC2::RouteTable / NatGateway have no CloudFormation delete, and
# delete_vpc refuses while non-main route tables remain -> VPC stacks can't be
# deleted.  (IGW, EIP, Route, VPCGatewayAttachment, SubnetRouteTableAssociation
# also have no delete, but nothing blocks on them; they just leak.)
CfnRouteTableWithDelete = _delegating_model(_MotoRouteTable, _delete_route_table)
CfnNatGatewayWithDelete = _delegating_model(_MotoNatGateway, _delete_nat_gateway)


class CfnTaskDefinition(CloudFormationModel):
    """AWS::ECS::TaskDefinition: moto's model drops the task and execution roles, the network
    mode, compatibilities and size, and registers an update's containers without camel-casing
    their keys. This keeps them, so a task started from it runs as the template says."""

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ECS::TaskDefinition"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "TaskDefinitionArn"

    @staticmethod
    def _register(props: dict[str, Any], resource_name: str, account_id: str, region_name: str):
        from moto.core.utils import pascal_to_camelcase, remap_nested_keys
        from moto.ecs.models import ecs_backends

        return ecs_backends[account_id][region_name].register_task_definition(
            family=props.get("Family", resource_name),
            container_definitions=remap_nested_keys(
                props.get("ContainerDefinitions", []), pascal_to_camelcase
            ),
            network_mode=props.get("NetworkMode"),
            tags=[{"key": t["Key"], "value": t["Value"]} for t in props.get("Tags", [])],
            requires_compatibilities=props.get("RequiresCompatibilities"),
            cpu=props.get("Cpu"),
            memory=props.get("Memory"),
            task_role_arn=props.get("TaskRoleArn"),
            execution_role_arn=props.get("ExecutionRoleArn"),
        )

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        return cls._register(
            cloudformation_json["Properties"], resource_name, account_id, region_name
        )

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        # every change registers a new revision, as ECS does (the old one stays ACTIVE)
        return cls._register(
            cloudformation_json["Properties"], new_resource_name, account_id, region_name
        )

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name
    ) -> None:
        from moto.ecs.models import ecs_backends

        ecs_backends[account_id][region_name].deregister_task_definition(resource_name)


class CfnService(CloudFormationModel):
    """AWS::ECS::Service: moto's model drops the network configuration, without which no task
    of an awsvpc task definition can start, and the tags and PropagateTags its tasks get."""

    @staticmethod
    def cloudformation_name_type() -> str:
        return "ServiceName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ECS::Service"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        from moto.ecs.models import Service

        return Service.has_cfn_attr(attr)

    @staticmethod
    def _network(service: Any, props: dict[str, Any]) -> Any:
        from moto.core.utils import pascal_to_camelcase, remap_nested_keys

        network = remap_nested_keys(props.get("NetworkConfiguration") or {}, pascal_to_camelcase)
        for deployment in service.deployments:
            deployment["networkConfiguration"] = network or None
        service.launch_type = props.get("LaunchType", service.launch_type)
        service.tags = [{"key": t["Key"], "value": t["Value"]} for t in props.get("Tags", [])]
        service.propagate_tags = props.get("PropagateTags", "NONE")
        return service

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        from moto.ecs.models import Service

        service = Service.create_from_cloudformation_json(
            resource_name, cloudformation_json, account_id, region_name, **kwargs
        )
        return cls._network(service, cloudformation_json["Properties"])

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        from moto.ecs.models import Service

        service = Service.update_from_cloudformation_json(
            original_resource, new_resource_name, cloudformation_json, account_id, region_name
        )
        return cls._network(service, cloudformation_json["Properties"])

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name
    ) -> None:
        from moto.ecs.models import Service

        Service.delete_from_cloudformation_json(
            resource_name, cloudformation_json, account_id, region_name
        )


class CfnDynamoDbTable(CloudFormationModel):
    """AWS::DynamoDB::Table: moto's model ignores TimeToLiveSpecification, so a table made with
    TTL on reads as DISABLED (celery's result backend then tries to enable it itself)."""

    @staticmethod
    def cloudformation_name_type() -> str:
        return "TableName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::DynamoDB::Table"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        from moto.dynamodb.models.table import Table

        return Table.has_cfn_attr(attr)

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        from moto.dynamodb.models import dynamodb_backends
        from moto.dynamodb.models.table import Table

        table = Table.create_from_cloudformation_json(
            resource_name, cloudformation_json, account_id, region_name, **kwargs
        )
        ttl = cloudformation_json["Properties"].get("TimeToLiveSpecification")
        if ttl:
            dynamodb_backends[account_id][region_name].update_time_to_live(table.name, ttl)
        return table

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name
    ) -> None:
        from moto.dynamodb.models.table import Table

        Table.delete_from_cloudformation_json(
            resource_name, cloudformation_json, account_id, region_name
        )


# moto caches the model list/map on first use: drop the caches so the classes
# above are seen even if a stack was already created in this process.
for _f in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
    _f.cache_clear()


# --------------------------------------------------------------------------
# Change-set execution fixes
# --------------------------------------------------------------------------
def patch_change_sets() -> None:
    Backend = cfn_models.CloudFormationBackend
    if getattr(Backend, "_extras_patched", False):
        return
    original_execute = Backend.execute_change_set

    def execute_change_set(self, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = self.describe_change_set(change_set_name)  # by ARN or name
        stack = self.stacks[change_set.stack_id]
        old_export_names = [e.name for e in stack.exports]
        # (a) Fn::ImportValue: moto builds change-set stacks with an empty,
        #     private cross_stack_resources dict; point it at the live exports.
        stack.cross_stack_resources = self.exports
        stack.resource_map.cross_stack_resources = self.exports
        before = dict(stack.resource_map._parsed_resources)
        try:
            original_execute(self, change_set_name, stack_name)
        except Exception as exc:  # report like CloudFormation, don't raise
            failed = "CREATE" if change_set.change_set_type == "CREATE" else "UPDATE"
            reason = getattr(exc, "message", None) or str(exc)
            stack._add_stack_event(f"{failed}_FAILED", resource_status_reason=reason)
            stack.status = "ROLLBACK_COMPLETE" if failed == "CREATE" else "UPDATE_ROLLBACK_COMPLETE"
            stack._add_stack_event(stack.status)
            change_set.execution_status = "EXECUTE_FAILED"
            # stop the lazy ResourceMap from re-trying creation on every read
            stack.resource_map._resource_json_map = {
                k: v
                for k, v in stack.resource_map._resource_json_map.items()
                if k in stack.resource_map._parsed_resources
            }
            return
        # (b) Outputs/Exports: moto never re-reads the template after execute.
        stack._parse_template()
        stack.description = stack.template_dict.get("Description")
        stack.output_map = stack._create_output_map()
        for name in old_export_names:
            self.exports.pop(name, None)
        self._validate_export_uniqueness(stack)
        for export in stack.exports:
            self.exports[export.name] = export
        # (c) per-resource events (moto only records stack-level events).
        # Insert them before the final stack *_COMPLETE event.
        final = stack.events.pop()
        parsed = stack.resource_map._parsed_resources
        for change in change_set.changes:
            verb = {"Add": "CREATE", "Modify": "UPDATE", "Remove": "DELETE"}[change.action]
            res = parsed.get(change.logical_resource_id) or before.get(change.logical_resource_id)
            ev = cfn_models.Event(
                stack_id=stack.stack_id,
                stack_name=stack.name,
                logical_resource_id=change.logical_resource_id,
                physical_resource_id=getattr(res, "physical_resource_id", None),
                resource_type=change.resource_type,
                resource_status=f"{verb}_COMPLETE",
                resource_status_reason=None,
                resource_properties=None,
            )
            stack.events.append(ev)
        stack.events.append(final)

    Backend.execute_change_set = execute_change_set

    original_delete = Backend.delete_stack

    def delete_stack(self, name_or_stack_id: str) -> None:
        # moto pops the stack *before* deleting its resources; if a resource
        # fails to delete the stack silently disappears (and its exports stay).
        # Report DELETE_FAILED instead, like CloudFormation.
        stack = next(
            (s for s in self.stacks.values() if name_or_stack_id in (s.name, s.stack_id)), None
        )
        if stack is None:
            return  # deleting a missing stack is a no-op in CloudFormation
        try:
            original_delete(self, stack.stack_id)
        except Exception as exc:
            self.stacks[stack.stack_id] = stack
            rm = stack.resource_map  # keep only what is left; stop lazy re-creation
            rm._resource_json_map = {
                k: v for k, v in rm._resource_json_map.items() if k in rm._parsed_resources
            }
            stack.status = "DELETE_FAILED"
            stack._add_stack_event(
                "DELETE_FAILED", resource_status_reason=getattr(exc, "message", None) or str(exc)
            )

    Backend.delete_stack = delete_stack

    # (d) Modify of a type whose moto model has no update_from_cloudformation_json
    #     (LogGroup, TargetGroup, RDS, Subnet, ...) stores None for the resource:
    #     it vanishes from the stack and every later Ref to it yields None.
    #     Keep the existing resource instead (properties are not updated).
    original_update = parsing.parse_and_update_resource

    def parse_and_update_resource(
        logical_id, resource_json, resources_map, account_id, region_name
    ):
        new = original_update(logical_id, resource_json, resources_map, account_id, region_name)
        return new if new is not None else resources_map._parsed_resources.get(logical_id)

    parsing.parse_and_update_resource = parse_and_update_resource
    Backend._extras_patched = True


def register_acm_certificate(
    arn: str,
    domain: str = "airflow.example.com",
    account_id: str = "123456789012",
    region: str = "us-east-1",
) -> None:
    """Make an ACM certificate exist under a fixed ARN (ELBv2 HTTPS listeners in
    moto check that CertificateArn exists in ACM or IAM)."""
    from moto.acm.models import acm_backends

    backend = acm_backends[account_id][region]
    if arn in backend._certificates:
        return
    generated = backend.request_certificate(domain, None, [], [])
    bundle = backend._certificates.pop(generated)
    bundle.arn = arn
    backend._certificates[arn] = bundle


def patch_fargate_run_task() -> None:
    """RunTask of a Fargate task definition whose containers set no memory (the task does):
    moto adds the containers' memory up and fails on None. Count it as 0."""
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface
    from moto.ecs.models import EC2ContainerServiceBackend as Backend

    if getattr(Backend, "_fargate_patched", False):
        return
    original = Backend._calculate_task_resource_requirements

    def requirements(task_definition: Any) -> dict[str, Any]:
        for container in task_definition.container_definitions:
            if not any(k in container for k in ("Memory", "MemoryReservation", "memory")):
                container["memory"] = 0
        return original(task_definition)

    Backend._calculate_task_resource_requirements = staticmethod(requirements)
    # an awsvpc task's ENI in a VPC without DNS hostnames has no private DNS name, which
    # moto's Task reads anyway
    NetworkInterface.private_dns_name = None
    Backend._fargate_patched = True
